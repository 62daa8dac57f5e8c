"""Multi-gate Mixture-of-Experts per token (Ma et al., KDD 2018) over a shared word embedding.

MMoE for sequence labelling: every real token's embedding x (``[N, D]``, padding left out) runs through
n shared experts f_i; task k's gate g^k(x) = softmax(W_gk x) mixes them per token and a linear head
gives the token's tag scores: y_k = W_k Σ_i g^k(x)_i f_i(x). Task k's loss reaches the embedding, every
expert and only its own gate and head.

Experts are MLPs of ``expert_hidden`` units (run as one batched operation, ``models/experts.py``) or
modules of your own, ``expert(in_dim, expert_dim)`` as in MMoE. The embedding is an ``nn.Embedding`` of
``vocab_size`` words or your module ``embedding(batch) -> [B, T, D]``. Losses and predictions are the
tagger's (``models/tagger.py``), so its metrics and evaluation apply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.decoders import LinearDecoder
from sparseshare.models.experts import run_experts
from sparseshare.models.mlp import ExpertFactory, Gate, expert_builder
from sparseshare.models.tagger import TagHeads


class TokenMMoE(TagHeads, nn.Module):
    """``forward(batch, task) -> logits [B, T, n_tags[task]]`` (zeros at padding), MMoE per token.

    ``n_tags``: task -> number of tags. Give ``vocab_size`` (an ``nn.Embedding`` of ``embedding_dim``,
    id 0 = padding) or ``embedding``: your module mapping a batch to ``[B, T, D]`` (an ``nn.Embedding`` is
    called on ``batch.words``), with ``embedding_dim`` = D unless it has an ``embedding_dim`` or
    ``out_dim`` attribute. ``dropout`` acts on the embeddings and on the gated mixture.
    """

    def __init__(
        self,
        n_tags: Mapping[str, int],
        vocab_size: int | None = None,
        *,
        embedding: nn.Module | None = None,
        embedding_dim: int | None = None,
        num_experts: int = 4,
        expert_hidden: Sequence[int] = (32,),
        expert: ExpertFactory | None = None,
        expert_dim: int | None = None,
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
    ):
        super().__init__()
        if not n_tags:
            raise ValueError("TokenMMoE needs at least one task")
        for task, n in n_tags.items():
            if not isinstance(task, str) or not task or "." in task:
                raise ValueError(f"task name {task!r} cannot name a module (empty or contains '.')")
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"task '{task}' needs a positive number of tags, got {n!r}")
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        if (vocab_size is None) == (embedding is None):
            raise ValueError("give vocab_size (a built-in embedding) or embedding (your module), not both")
        if embedding is None:
            self.embedding = nn.Embedding(vocab_size, embedding_dim or 32, padding_idx=0)
        else:
            self.embedding = embedding
        dim = embedding_dim or getattr(self.embedding, "embedding_dim", None)
        dim = dim or getattr(self.embedding, "out_dim", None)
        if not dim:
            raise ValueError("give embedding_dim: the width D of what your embedding module returns")
        self.embedding_dim = int(dim)
        build, out_dim = expert_builder(expert, expert_hidden, 0.0, activation, expert_dim)
        self.experts = nn.ModuleList(build(self.embedding_dim) for _ in range(num_experts))
        self.gates = nn.ModuleDict({t: Gate(self.embedding_dim, num_experts) for t in n_tags})
        self.heads = nn.ModuleDict({t: LinearDecoder(out_dim, n) for t, n in n_tags.items()})
        self.drop = nn.Dropout(dropout)

    def tokens(self, batch) -> torch.Tensor:
        """The real tokens' embeddings, ``[N, D]`` in row-major order of ``batch.mask``."""
        h = self.embedding(batch.words if isinstance(self.embedding, nn.Embedding) else batch)
        if h.dim() != 3 or h.shape[:2] != batch.mask.shape or h.shape[2] != self.embedding_dim:
            raise ValueError(
                f"the embedding gave shape {tuple(h.shape)}, want [B, T, {self.embedding_dim}] "
                f"with [B, T] = {tuple(batch.mask.shape)}"
            )
        return self.drop(h[batch.mask])

    def gate_weights(self, batch, task: str) -> torch.Tensor:
        """Task's gate per real token: ``[N, num_experts]``, each row a softmax (sums to 1)."""
        return torch.softmax(self.gates[task].proj(self.tokens(batch)), dim=-1)

    def forward(self, batch, task: str) -> torch.Tensor:
        return self.forward_all(batch, [task])[task]

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's ``[B, T, tags]`` logits, the embedding and experts computed once."""
        x = self.tokens(batch)
        outs = run_experts(self.experts, [x] * len(self.experts))
        b, t = batch.mask.shape
        result = {}
        for task in tasks or self.tasks:
            logits = self.heads[task](self.drop(self.gates[task](x, outs)))  # [N, tags]
            full = logits.new_zeros(b, t, logits.shape[-1])
            result[task] = full.masked_scatter(batch.mask.unsqueeze(-1), logits)
        return result

    def task_parameter_names(self, task: str) -> list[str]:
        """The embedding, every expert, the task's own gate and head."""
        mine = ("embedding.", "experts.", f"gates.{task}.", f"heads.{task}.")
        return [n for n, _ in self.named_parameters() if n.startswith(mine)]
