"""CGC and PLE per token (Tang et al., RecSys 2020, Eq. 1-5) for sequence labelling.

The extraction levels are PLE's own (``sharing/ple.py``), run on every real token's embedding as on a
table's rows; each task's decoder (linear or CRF) reads its last-level gated mixture. The embedding, the
tokens and the scatter back to ``[B, T, tags]`` are the other token models' (``models/token_experts.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.mlp import ExpertFactory, expert_builder
from sparseshare.models.token_experts import TokenInputs, word_char_embedding
from sparseshare.sharing.ple import ExtractionLevel, level_prefixes


class TokenPLE(TokenInputs, nn.Module):
    """PLE per token (CGC with ``levels=1``): ``forward(batch, task) -> [B, T, n_tags[task]]``.

    The embedding arguments are :class:`~sparseshare.models.token_experts.TokenMMoE`'s; the experts'
    are PLE's (``sharing/ple.py``): ``num_specific`` experts per task and ``num_shared`` shared ones at
    each of ``levels`` levels."""

    def __init__(
        self,
        n_tags: Mapping[str, int],
        vocab_size: int | None = None,
        *,
        embedding: nn.Module | None = None,
        embedding_dim: int | None = None,
        num_specific: int = 1,
        num_shared: int = 1,
        expert_hidden: Sequence[int] = (32,),
        levels: int = 2,
        expert: ExpertFactory | None = None,
        expert_dim: int | None = None,
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        decoder: str = "linear",
    ):
        super().__init__()
        if levels < 1 or num_specific < 0 or num_shared < 0 or num_specific + num_shared < 1:
            raise ValueError("TokenPLE needs levels >= 1, expert counts >= 0 and an expert per gate")
        self._inputs(n_tags, vocab_size, embedding, embedding_dim, dropout)
        build, dim = expert_builder(expert, expert_hidden, 0.0, activation, expert_dim)
        dims = [self.embedding_dim] + [dim] * (levels - 1)
        self.levels = nn.ModuleList(
            ExtractionLevel(d, list(n_tags), num_specific, num_shared, build, j == levels - 1)
            for j, d in enumerate(dims)
        )
        self.heads = self._heads(n_tags, dim, decoder)

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's scores; each expert computed once per token."""
        tasks = list(tasks or self.tasks)
        x = self.tokens(batch)
        inputs: Mapping[str, torch.Tensor] = dict.fromkeys(self.tasks, x)
        shared_in: torch.Tensor | None = x
        for level in self.levels:
            inputs, shared_in = level(inputs, shared_in, tasks)
        return {t: self.scores(inputs[t], batch, t) for t in tasks}

    def task_parameter_names(self, task: str) -> list[str]:
        """The embedding, the task's head and what PLE's task k depends on at each level."""
        mine = ("embedding.", f"heads.{task}.", *level_prefixes(len(self.levels), task))
        return [n for n, _ in self.named_parameters() if n.startswith(mine)]


def token_ple_net(
    n_words: int,
    n_chars: int,
    n_tags: Mapping[str, int],
    word_dim: int = 100,
    char_dim: int = 30,
    char_filters: int = 30,
    char_width: int = 3,
    dropout: float = 0.5,
    word_dropout: float = 0.0,
    decoder: str = "linear",
    num_specific: int = 1,
    num_shared: int = 1,
    expert_hidden: Sequence[int] = (32,),
    levels: int = 2,
    embeddings: torch.Tensor | None = None,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> TokenPLE:
    """:class:`TokenPLE` (CGC with ``levels=1``) over the tagger's words + char-CNN."""
    emb = word_char_embedding(
        n_words, n_chars, word_dim, char_dim, char_filters, char_width, word_dropout, embeddings
    )
    return TokenPLE(n_tags, embedding=emb, num_specific=num_specific, num_shared=num_shared,
                    expert_hidden=expert_hidden, levels=levels, dropout=dropout, decoder=decoder,
                    expert=expert, expert_dim=expert_dim)  # fmt: skip
