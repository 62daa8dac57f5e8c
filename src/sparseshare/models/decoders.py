"""Task-specific output layers for sequence labelling: linear (Exp1/Exp2) or CRF (Exp3), by name."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sparseshare.errors import ConfigError
from sparseshare.models.crf import CRFDecoder

IGNORE = -100  # the target of a padding position


class LinearDecoder(nn.Module):
    """Fully-connected token classifier (Exp1/Exp2 of the sparse-sharing paper)."""

    def __init__(self, in_dim: int, n_tags: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, n_tags)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence negative log-likelihood (token cross-entropy summed over each sentence, averaged
        over the batch): the same scale as a CRF's sentence NLL (Ma and Hovy 2016). Padding is ignored by
        index, not selected by the mask (a boolean selection would wait for the device)."""
        gold = tags.masked_fill(~mask, IGNORE)
        flat = F.cross_entropy(logits.flatten(0, 1), gold.flatten(), ignore_index=IGNORE, reduction="sum")
        return flat / mask.shape[0]

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        both = torch.cat([logits.argmax(-1), mask.sum(1, keepdim=True)], dim=1).cpu().tolist()  # one copy
        return [row[: row[-1]] for row in both]


DECODERS: dict[str, type[nn.Module]] = {"linear": LinearDecoder, "crf": CRFDecoder}


def build_decoder(name: str, in_dim: int, n_tags: int) -> nn.Module:
    """The named decoder (``forward``, ``loss``, ``decode``); an unknown name lists the valid ones."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ConfigError(f"unknown decoder '{name}'; valid: {sorted(DECODERS)}") from None
    return cls(in_dim, n_tags)
