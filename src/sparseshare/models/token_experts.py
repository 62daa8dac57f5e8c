"""Gated experts per token: MMoE (Ma et al., KDD 2018), CGC/PLE (Tang et al., RecSys 2020) and PBFS
(Entropy 2022) for sequence labelling, over a shared word embedding.

Every real token's embedding x (``[N, D]``, padding left out) is one "row" of the tabular models: task
k's gate mixes experts per token and the task's decoder (linear or CRF, ``models/decoders.py``) gives the
token's tag scores, scattered back to ``[B, T, tags]`` (zeros at padding).

- :class:`TokenMMoE`: n shared experts f_i; y_k = W_k Σ_i g^k(x)_i f_i(x) (MMoE Eq. 7).
- :class:`TokenPBFSNet`: PBFS's network (Eq. 1-3, 7-9): task m gates over its specific experts and the
  shared experts of its pools U_m; wrapped by :class:`~sparseshare.sharing.pbfs.PBFS`
  (``sharing.pbfs.token_pbfs``), each task prunes the shared experts to its own sparsity on Algorithm
  2's schedule.
- ``TokenPLE`` (CGC's task-specific and shared experts in PLE's extraction levels, Tang et al. Eq. 1-5)
  is in ``sharing/token_ple.py``, beside the levels it reuses.

Experts are MLPs of ``expert_hidden`` units (run as one batched operation, ``models/experts.py``) or
modules of your own, ``expert(in_dim, expert_dim)`` as on tables. The embedding is an ``nn.Embedding`` of
``vocab_size`` words, the tagger's words + char-CNN (:class:`WordCharEmbedding`), or your module
``embedding(batch) -> [B, T, D]``. Losses and predictions are the tagger's (``models/tagger.py``), so its
metrics and evaluation apply unchanged. The ``token_*`` builders take what a recipe file can hold (the
experiment configs' route: ``systems: [mmoe, cgc, ple, pbfs]`` on sequence data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.decoders import build_decoder
from sparseshare.models.experts import run_experts
from sparseshare.models.mlp import (
    ExpertFactory,
    Gate,
    expert_builder,
    pool_memberships,
    pool_weight_names,
)
from sparseshare.models.tagger import CharCNN, TagHeads, embed_words


class WordCharEmbedding(nn.Module):
    """The tagger's input per token (Table 2 of the sparse-sharing paper): a word embedding (pretrained
    ``embeddings`` copied in, if given) and char-CNN features; ``forward(batch) -> [B, T, out_dim]``."""

    def __init__(
        self,
        n_words: int,
        n_chars: int,
        word_dim: int = 100,
        char_dim: int = 30,
        char_filters: int = 30,
        char_width: int = 3,
        embeddings: torch.Tensor | None = None,
        word_dropout: float = 0.0,
    ):
        super().__init__()
        if not 0 <= word_dropout < 1:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.word_embed = nn.Embedding(n_words, word_dim, padding_idx=0)
        if embeddings is not None:
            if tuple(embeddings.shape) != (n_words, word_dim):
                raise ValueError(
                    f"embeddings have shape {tuple(embeddings.shape)}, want {(n_words, word_dim)}"
                )
            self.word_embed.weight.data.copy_(embeddings)
        self.char_cnn = CharCNN(n_chars, char_dim, char_filters, char_width) if char_filters > 0 else None
        self.word_dropout = word_dropout
        self.out_dim = word_dim + (char_filters if self.char_cnn is not None else 0)

    def forward(self, batch) -> torch.Tensor:
        p = self.word_dropout if self.training else 0.0
        return embed_words(self.word_embed, self.char_cnn, batch.words, batch.chars, p)


class TokenInputs(TagHeads):
    """What the token models share: the tasks and their decoders (``heads``), the embedding, the real
    tokens' rows ``[N, D]`` and the scatter of their scores back to ``[B, T, tags]``. Mixed in first:
    ``class M(TokenInputs, nn.Module)``; ``__init__`` calls :meth:`_inputs`."""

    def _inputs(self, n_tags, vocab_size, embedding, embedding_dim, dropout) -> None:
        name = type(self).__name__
        if not n_tags:
            raise ValueError(f"{name} needs at least one task")
        for task, n in n_tags.items():
            if not isinstance(task, str) or not task or "." in task:
                raise ValueError(f"task name {task!r} cannot name a module (empty or contains '.')")
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"task '{task}' needs a positive number of tags, got {n!r}")
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
        self.drop = nn.Dropout(dropout)

    def _heads(self, n_tags: Mapping[str, int], in_dim: int, decoder: str) -> nn.ModuleDict:
        return nn.ModuleDict({t: build_decoder(decoder, in_dim, n) for t, n in n_tags.items()})

    def tokens(self, batch) -> torch.Tensor:
        """The real tokens' embeddings, ``[N, D]`` in row-major order of ``batch.mask``."""
        h = self.embedding(batch.words if isinstance(self.embedding, nn.Embedding) else batch)
        if h.dim() != 3 or h.shape[:2] != batch.mask.shape or h.shape[2] != self.embedding_dim:
            raise ValueError(
                f"the embedding gave shape {tuple(h.shape)}, want [B, T, {self.embedding_dim}] "
                f"with [B, T] = {tuple(batch.mask.shape)}"
            )
        return self.drop(h[batch.mask])

    def scores(self, mixture: torch.Tensor, batch, task: str) -> torch.Tensor:
        """The task's decoder on its gated mixture ``[N, h]``, as ``[B, T, tags]`` with zeros at padding."""
        logits = self.heads[task](self.drop(mixture))
        b, t = batch.mask.shape
        full = logits.new_zeros(b, t, logits.shape[-1])
        return full.masked_scatter(batch.mask.unsqueeze(-1), logits)

    def forward(self, batch, task: str) -> torch.Tensor:
        return self.forward_all(batch, [task])[task]


class TokenMMoE(TokenInputs, nn.Module):
    """``forward(batch, task) -> logits [B, T, n_tags[task]]`` (zeros at padding), MMoE per token.

    ``n_tags``: task -> number of tags. Give ``vocab_size`` (an ``nn.Embedding`` of ``embedding_dim``,
    id 0 = padding) or ``embedding``: your module mapping a batch to ``[B, T, D]`` (an ``nn.Embedding`` is
    called on ``batch.words``), with ``embedding_dim`` = D unless it has an ``embedding_dim`` or
    ``out_dim`` attribute. ``dropout`` acts on the embeddings and on the gated mixture; ``decoder`` is
    'linear' or 'crf'.
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
        decoder: str = "linear",
    ):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self._inputs(n_tags, vocab_size, embedding, embedding_dim, dropout)
        build, out_dim = expert_builder(expert, expert_hidden, 0.0, activation, expert_dim)
        self.experts = nn.ModuleList(build(self.embedding_dim) for _ in range(num_experts))
        self.gates = nn.ModuleDict({t: Gate(self.embedding_dim, num_experts) for t in n_tags})
        self.heads = self._heads(n_tags, out_dim, decoder)

    def gate_weights(self, batch, task: str) -> torch.Tensor:
        """Task's gate per real token: ``[N, num_experts]``, each row a softmax (sums to 1)."""
        return torch.softmax(self.gates[task].proj(self.tokens(batch)), dim=-1)

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Every requested task's ``[B, T, tags]`` logits, the embedding and experts computed once."""
        x = self.tokens(batch)
        outs = run_experts(self.experts, [x] * len(self.experts))
        return {t: self.scores(self.gates[t](x, outs), batch, t) for t in tasks or self.tasks}

    def task_parameter_names(self, task: str) -> list[str]:
        """The embedding, every expert, the task's own gate and head."""
        mine = ("embedding.", "experts.", f"gates.{task}.", f"heads.{task}.")
        return [n for n, _ in self.named_parameters() if n.startswith(mine)]


class TokenPBFSNet(TokenInputs, nn.Module):
    """PBFS's dense network per token (Eq. 1-3, 7-9); :func:`token_pbfs` wraps it with the masks.

    Task m's gate (reading the token's embedding) mixes its ``num_specific`` experts and the
    ``num_shared`` shared experts of each pool in U_m (``pools``: lists of tasks, Algorithm 1 or yours;
    default one pool of all tasks). The embedding arguments are :class:`TokenMMoE`'s."""

    def __init__(
        self,
        n_tags: Mapping[str, int],
        vocab_size: int | None = None,
        *,
        pools: Sequence[Sequence[str]] | None = None,
        embedding: nn.Module | None = None,
        embedding_dim: int | None = None,
        num_specific: int = 1,
        num_shared: int = 1,
        expert_hidden: Sequence[int] = (32, 32),
        expert: ExpertFactory | None = None,
        expert_dim: int | None = None,
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        decoder: str = "linear",
    ):
        super().__init__()
        self._inputs(n_tags, vocab_size, embedding, embedding_dim, dropout)
        self.pools, self.memberships = pool_memberships(pools, list(n_tags))
        build, dim = expert_builder(expert, expert_hidden, 0.0, activation, expert_dim)

        def experts(n: int) -> nn.ModuleList:
            return nn.ModuleList(build(self.embedding_dim) for _ in range(n))

        self.specific = nn.ModuleDict({t: experts(num_specific) for t in n_tags})
        self.shared = nn.ModuleList(experts(num_shared) for _ in self.pools)
        n_experts = {t: num_specific + num_shared * len(self.memberships[t]) for t in n_tags}
        if min(n_experts.values()) < 1:
            raise ValueError(f"every task needs at least one expert; got {n_experts}")
        self.gates = nn.ModuleDict({t: Gate(self.embedding_dim, n) for t, n in n_experts.items()})
        self.heads = self._heads(n_tags, dim, decoder)

    def forward(self, batch, task: str) -> torch.Tensor:
        x = self.tokens(batch)
        experts = [*self.specific[task], *(e for s in self.memberships[task] for e in self.shared[s])]
        outs = run_experts(experts, [x] * len(experts))  # O_m (Eq. 7), then P_s for s in U_m, batched
        return self.scores(self.gates[task](x, outs), batch, task)  # Eq. 8-9, a decoder as the tower

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return {t: self(batch, t) for t in tasks or self.tasks}

    def task_parameter_names(self, task: str) -> list[str]:
        """The embedding, task m's specific experts, its pools' shared experts, its gate and head."""
        pools = tuple(f"shared.{s}." for s in self.memberships[task])
        mine = ("embedding.", f"specific.{task}.", *pools, f"gates.{task}.", f"heads.{task}.")
        return [n for n, _ in self.named_parameters() if n.startswith(mine)]

    def shared_weight_names(self, task: str | None = None, pool: int | None = None) -> list[str]:
        """Weight matrices of the shared experts of the task's pools (of one pool; of all with no task):
        what PBFS prunes."""
        return pool_weight_names(self.shared, self.memberships, task, pool)


# --- builders a recipe file can name (JSON arguments only): the experiment configs' route ------------


def word_char_embedding(
    n_words, n_chars, word_dim, char_dim, char_filters, char_width, word_dropout, embeddings
) -> WordCharEmbedding:
    """The built-in embedding of the recipe builders (arguments in the tagger's order)."""
    return WordCharEmbedding(
        n_words, n_chars, word_dim, char_dim, char_filters, char_width, embeddings, word_dropout
    )


def token_mmoe_net(
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
    num_experts: int = 8,
    expert_hidden: Sequence[int] = (32,),
    embeddings: torch.Tensor | None = None,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> TokenMMoE:
    """:class:`TokenMMoE` over the tagger's words + char-CNN (the sizes of a config's 'model' section)."""
    emb = word_char_embedding(
        n_words, n_chars, word_dim, char_dim, char_filters, char_width, word_dropout, embeddings
    )
    return TokenMMoE(n_tags, embedding=emb, num_experts=num_experts, expert_hidden=expert_hidden,
                     dropout=dropout, decoder=decoder, expert=expert, expert_dim=expert_dim)  # fmt: skip


def token_pbfs_net(
    n_words: int,
    n_chars: int,
    n_tags: Mapping[str, int],
    pools: Sequence[Sequence[str]] | None = None,
    word_dim: int = 100,
    char_dim: int = 30,
    char_filters: int = 30,
    char_width: int = 3,
    dropout: float = 0.5,
    word_dropout: float = 0.0,
    decoder: str = "linear",
    num_specific: int = 1,
    num_shared: int = 1,
    expert_hidden: Sequence[int] = (32, 32),
    embeddings: torch.Tensor | None = None,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> TokenPBFSNet:
    """:class:`TokenPBFSNet` over the tagger's words + char-CNN (a recipe's ``mechanism: pbfs`` masks it)."""
    emb = word_char_embedding(
        n_words, n_chars, word_dim, char_dim, char_filters, char_width, word_dropout, embeddings
    )
    return TokenPBFSNet(n_tags, pools=pools, embedding=emb, num_specific=num_specific,
                        num_shared=num_shared, expert_hidden=expert_hidden, dropout=dropout,
                        decoder=decoder, expert=expert, expert_dim=expert_dim)  # fmt: skip
