"""Task-specific output layers for sequence labelling: linear (Exp1/Exp2) or CRF (Exp3), by name."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sparseshare.errors import ConfigError
from sparseshare.models.crf import CRFDecoder


class LinearDecoder(nn.Module):
    """Fully-connected token classifier (Exp1/Exp2 of the sparse-sharing paper)."""

    def __init__(self, in_dim: int, n_tags: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, n_tags)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)

    def loss(self, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence negative log-likelihood (token cross-entropy summed over each sentence, averaged
        over the batch): the same scale as a CRF's sentence NLL (Ma and Hovy 2016)."""
        return F.cross_entropy(logits[mask], tags[mask], reduction="sum") / mask.shape[0]

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        pred = logits.argmax(-1).cpu()
        lengths = mask.sum(1).cpu().tolist()
        return [pred[i, :n].tolist() for i, n in enumerate(lengths)]


DECODERS: dict[str, type[nn.Module]] = {"linear": LinearDecoder, "crf": CRFDecoder}


def build_decoder(name: str, in_dim: int, n_tags: int) -> nn.Module:
    """The named decoder (``forward``, ``loss``, ``decode``); an unknown name lists the valid ones."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ConfigError(f"unknown decoder '{name}'; valid: {sorted(DECODERS)}") from None
    return cls(in_dim, n_tags)
