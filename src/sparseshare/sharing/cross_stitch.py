"""Cross-stitch networks (Misra et al. 2016): soft sharing between task columns, for both kinds of data.

After every hidden layer l a cross-stitch unit mixes the task columns' activations linearly (Misra et
al., Eq. 1):

    h̃_t^l = Σ_s α^l_{t,s} h_s^l,

with α^l a learned T x T matrix, initialised to 0.9 on the diagonal and 0.1 / (T - 1) elsewhere (the
"(0.9, 0.1)" initialisation, which keeps each column mostly its own). The mixed activations feed the next
layer of each column; each task's output reads its own column's last mixed activation. Every task's loss
reaches every column through the units, which is what makes the sharing "soft". With one task the unit
is the identity.

Tabular (``CrossStitch``, the PBFS paper's cross-stitch baseline, Section 4.2): each task owns a column,
an MLP with the bottom sizes of the single-task baseline, and a tower.

Sequence labelling (``CrossStitchSharing``, the sparse-sharing paper's Table 3 "Soft sharing" and its
Exp3 soft-sharing baseline), built out of the base tagger (the paper: "the base model ... is used as
building block"): each task owns a copy of the base BiLSTM (per layer), with a unit after every BiLSTM
layer; task t's decoder reads h̃_t^L. With a 1-layer BiLSTM the single unit sits between the BiLSTM
outputs and the decoders. The word embeddings and the char-CNN are shared by all columns, which is what
the paper counts: Table 3 gives soft sharing 1596k parameters against 1602k for three single-task
models, i.e. three BiLSTMs (3 x 531.2k) plus *one* char-CNN (2.7k); per-task char-CNNs would make it
1602k. Sharing the input layer also keeps the comparison about how the BiLSTM layers share. Every column
starts from the base network's BiLSTM weights, as each single-task model does under the same seed, so
with identity units this is exactly T single-task BiLSTMs over one input layer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from sparseshare.models.mlp import MLP, TaskTowers, check_tasks, towers
from sparseshare.models.tagger import CharCNN, TagHeads, bilstm, embed_words, split_layers


def stitch_init(n_tasks: int, self_weight: float = 0.9) -> torch.Tensor:
    """α with ``self_weight`` on the diagonal and the rest spread evenly over the other tasks."""
    if n_tasks == 1:
        return torch.ones(1, 1)
    a = torch.full((n_tasks, n_tasks), (1 - self_weight) / (n_tasks - 1))
    a.fill_diagonal_(self_weight)
    return a


class CrossStitch(TaskTowers, nn.Module):
    """``forward(batch, task)`` returns the task's logits (binary) or values (regression), shape ``[B]``."""

    def __init__(
        self,
        in_dim: int,
        kinds: Mapping[str, str],
        bottom: Sequence[int] = (32, 16, 8),
        tower: Sequence[int] = (8,),
        dropout: float = 0.0,
        activation: str | Callable[[], nn.Module] = "relu",
        self_weight: float = 0.9,
    ):
        super().__init__()
        self._tasks = check_tasks(kinds)
        self.kinds = dict(kinds)
        if not bottom:
            raise ValueError("cross-stitch needs at least one hidden layer to stitch")
        dims = [in_dim, *bottom]
        self.columns = nn.ModuleDict(
            {
                t: nn.ModuleList(MLP(dims[i], [dims[i + 1]], dropout, activation) for i in range(len(bottom)))
                for t in self._tasks
            }
        )
        n = len(self._tasks)
        self.stitch = nn.ParameterList(nn.Parameter(stitch_init(n, self_weight)) for _ in bottom)
        self.towers = towers(bottom[-1], kinds, tower, dropout, activation)

    def column_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The last stitched activations of every column, ``[T, B, h]`` in task order."""
        h = x.unsqueeze(0).expand(len(self._tasks), *x.shape)
        for layer, alpha in enumerate(self.stitch):
            h = torch.stack([self.columns[t][layer](h[i]) for i, t in enumerate(self._tasks)])
            h = torch.einsum("ts,sbh->tbh", alpha, h)  # Misra et al. Eq. 1
        return h

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        h = self.column_outputs(batch.x)
        return {t: self.towers[t](h[self._tasks.index(t)]) for t in (tasks or self._tasks)}

    def task_parameter_names(self, task: str) -> list[str]:
        """Every column and unit (each task's loss reaches them all through the units) and its tower."""
        return self._names("columns.", "stitch.", f"towers.{task}.")


def cross_stitch(
    in_dim: int,
    kinds: Mapping[str, str],
    bottom: Sequence[int] = (32, 16, 8),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
) -> CrossStitch:
    """Builder: one column per task with the single-task bottom sizes, a unit after every layer."""
    return CrossStitch(in_dim, kinds, bottom, tower, dropout, activation)


# --- sequence labelling: a BiLSTM column per task over the base tagger's input layer ---------------


class CrossStitchEncoder(nn.Module):
    """Shared input layer, one BiLSTM column per task, a cross-stitch unit after every layer."""

    def __init__(
        self,
        word_embed: nn.Embedding,
        char_cnn: CharCNN | None,
        columns: dict[str, list[nn.LSTM]],
        dropout: float = 0.5,
        word_dropout: float = 0.0,
        self_weight: float = 0.9,
        run_lstm=bilstm,
    ):
        super().__init__()
        depths = {len(layers) for layers in columns.values()}
        if len(depths) != 1 or 0 in depths:
            raise ValueError("every column needs the same number (>= 1) of BiLSTM layers")
        self.tasks = list(columns)
        self.word_embed = word_embed
        self.char_cnn = char_cnn
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.columns = nn.ModuleDict({t: nn.ModuleList(layers) for t, layers in columns.items()})
        n, depth = len(self.tasks), depths.pop()
        like = columns[self.tasks[0]][0].weight_ih_l0
        init = stitch_init(n, self_weight).to(device=like.device, dtype=like.dtype)
        self.stitch = nn.ParameterList(nn.Parameter(init.clone()) for _ in range(depth))
        self.out_dim = 2 * columns[self.tasks[0]][-1].hidden_size
        self.run_lstm = run_lstm  # the base tagger's: packed (bilstm) or not (model.packing)

    def forward(
        self, words: torch.Tensor, chars: torch.Tensor, mask: torch.Tensor, lengths=None
    ) -> torch.Tensor:
        """Every column's last stitched states, ``[T, B, L, out_dim]`` in task order, after dropout."""
        p = self.word_dropout if self.training else 0.0
        x = self.drop(embed_words(self.word_embed, self.char_cnn, words, chars, p))
        h = [x] * len(self.tasks)
        for layer, alpha in enumerate(self.stitch):
            out = torch.stack(
                [self.run_lstm(self.columns[t][layer], h[i], mask, lengths) for i, t in enumerate(self.tasks)]
            )
            h = torch.einsum("ts,sbld->tbld", alpha, out)  # Misra et al. Eq. 1
        return self.drop(h)


class CrossStitchSharing(TagHeads, nn.Module):
    """Cross-stitch soft sharing made from a base ``MultiTaskTagger``; a step is a plain optimizer step.

    The base model's input layer and decoders are taken over (not copied); its BiLSTM is copied into
    one column per task, so the base model itself should not be trained afterwards.
    """

    def __init__(self, model: nn.Module, self_weight: float = 0.9):
        super().__init__()
        base = model.encoder
        layers = split_layers(base.lstm)
        columns = {t: copy.deepcopy(layers) for t in model.tasks}
        self.encoder = CrossStitchEncoder(
            base.word_embed,
            base.char_cnn,
            columns,
            base.drop.p,
            base.word_dropout,
            self_weight,
            base.run_lstm,
        )
        self.heads = model.heads
        self._index = {t: i for i, t in enumerate(model.tasks)}

    def forward(self, batch, task: str) -> torch.Tensor:
        h = self.encoder(batch.words, batch.chars, batch.mask, getattr(batch, "lengths", None))
        return self.heads[task](h[self._index[task]])
