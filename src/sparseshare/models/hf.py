"""Sparse sharing over a pretrained transformer (Hugging Face ``transformers``): a shared encoder and a
head per task, fit for sparseshare's :class:`~sparseshare.contracts.MultiTaskModel` contract.

IMP (Sun et al., AAAI 2020, Algorithm 1) masks the encoder's attention (query/key/value/output dense)
and FFN (intermediate/output dense) weight matrices; embeddings, LayerNorms, the pooler, biases and the
task heads stay dense (:data:`HF_INCLUDE`, :data:`HF_EXCLUDE`, :func:`hf_prunable`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sparseshare.errors import ConfigError

KINDS = ("token", "sequence", "regression")
IGNORE = -100
HF_INCLUDE: tuple[str, ...] = (
    "encoder.*.attention.self.query.weight",
    "encoder.*.attention.self.key.weight",
    "encoder.*.attention.self.value.weight",
    "encoder.*.attention.output.dense.weight",
    "encoder.*.intermediate.dense.weight",
    "encoder.*.output.dense.weight",
)
HF_EXCLUDE: tuple[str, ...] = ("heads.*", "*pooler*", "*embed*", "*LayerNorm*", "*bias*")


def require_transformers():
    """The ``transformers`` module, or a one-line error saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "sparseshare.models.hf needs Hugging Face transformers: pip install sparseshare[hf]"
        ) from None
    return transformers


class HFMultiTask(nn.Module):
    """A pretrained encoder (e.g. ``transformers.AutoModel.from_pretrained(...)``) shared by all tasks and
    a linear head per task: ``heads = {task: (kind, n_labels)}`` with kind ``token`` (a tag per token,
    labels -100 ignored), ``sequence`` (a class per sequence, from the first token's state) or
    ``regression`` (``n_labels`` real values per sequence, MSE).

    Batches are dicts with ``input_ids``, ``attention_mask`` and ``labels``.
    """

    def __init__(self, encoder: nn.Module, heads: Mapping[str, tuple[str, int]]):
        super().__init__()
        if not heads:
            raise ConfigError("HFMultiTask: heads is empty; give {task: (kind, n_labels)}")
        for task, spec in heads.items():
            if not (isinstance(spec, tuple | list) and len(spec) == 2 and spec[0] in KINDS):
                raise ConfigError(
                    f"HFMultiTask: heads['{task}'] is {spec!r}; want (kind, n_labels), kind in {KINDS}"
                )
            if not isinstance(spec[1], int) or spec[1] < 1:
                raise ConfigError(
                    f"HFMultiTask: heads['{task}'] n_labels {spec[1]!r} is not a positive integer"
                )
        hidden = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if not isinstance(hidden, int):
            raise ConfigError("HFMultiTask: the encoder has no config.hidden_size (a transformers model?)")
        self.tasks = list(heads)
        self.kinds = {t: k for t, (k, _) in heads.items()}
        self.encoder = encoder
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, n) for t, (_, n) in heads.items()})

    def forward(self, batch: Mapping[str, torch.Tensor], task: str) -> torch.Tensor:
        h = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
        ).last_hidden_state
        if self.kinds[task] != "token":
            h = h[:, 0]  # the first ([CLS]) token's state
        return self.heads[task](h)

    def task_loss(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor], task: str) -> torch.Tensor:
        labels = batch["labels"]
        kind = self.kinds[task]
        if kind == "token":
            return F.cross_entropy(output.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        if kind == "sequence":
            return F.cross_entropy(output, labels)
        return F.mse_loss(output, labels.to(output.dtype).view_as(output))

    def task_predict(self, output: torch.Tensor, batch, task: str) -> torch.Tensor:
        return output if self.kinds[task] == "regression" else output.argmax(-1)

    def task_parameter_names(self, task: str) -> list[str]:
        """The encoder and ``task``'s head (not the pooler: the heads read hidden states)."""
        others = tuple(f"heads.{t}." for t in self.tasks if t != task)
        return [n for n, _ in self.named_parameters() if not n.startswith(others) and "pooler" not in n]


def hf_prunable(model: nn.Module) -> list[str]:
    """Names of the parameters IMP prunes in ``model`` (attention and FFN weight matrices)."""
    from sparseshare.pruning.prunable import prunable_names

    return prunable_names(model, HF_INCLUDE, HF_EXCLUDE)
