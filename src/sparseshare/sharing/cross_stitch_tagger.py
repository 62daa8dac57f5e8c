"""Soft sharing for sequence labelling: cross-stitch networks (Misra et al. 2016), the paper's Table 3
"Soft sharing" and its Exp3 soft-sharing baseline.

Built out of the base tagger (the paper: "the base model ... is used as building block"): each task owns
a column, a copy of the base BiLSTM (per layer), and after every BiLSTM layer l a learned T x T
cross-stitch matrix α^l mixes the columns' hidden states (Misra et al., Eq. 1):

    h̃_t^l = Σ_s α^l_{t,s} h_s^l,

initialised to 0.9 on the diagonal and 0.1 / (T - 1) elsewhere. The mixed states feed the next layer of
each column; task t's decoder reads h̃_t^L. With a 1-layer BiLSTM the single unit sits between the
BiLSTM outputs and the decoders. Every task's loss reaches every column through the units.

The word embeddings and the char-CNN are shared by all columns, which is what the paper counts:
Table 3 gives soft sharing 1596k parameters against 1602k for three single-task models, i.e. three
BiLSTMs (3 x 531.2k) plus *one* char-CNN (2.7k); per-task char-CNNs would make it 1602k. Sharing the
input layer also keeps the comparison about how the BiLSTM layers share. Every column starts from the
base network's BiLSTM weights, as each single-task model does under the same seed, so with identity
units this is exactly T single-task BiLSTMs over one input layer.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from sparseshare.models.tagger import CharCNN, TagHeads, bilstm, embed_words, split_layers
from sparseshare.sharing.cross_stitch import stitch_init


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

    def forward(
        self, words: torch.Tensor, chars: torch.Tensor, mask: torch.Tensor, lengths=None
    ) -> torch.Tensor:
        """Every column's last stitched states, ``[T, B, L, out_dim]`` in task order, after dropout."""
        p = self.word_dropout if self.training else 0.0
        x = self.drop(embed_words(self.word_embed, self.char_cnn, words, chars, p))
        h = [x] * len(self.tasks)
        for layer, alpha in enumerate(self.stitch):
            out = torch.stack(
                [bilstm(self.columns[t][layer], h[i], mask, lengths) for i, t in enumerate(self.tasks)]
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
            base.word_embed, base.char_cnn, columns, base.drop.p, base.word_dropout, self_weight
        )
        self.heads = model.heads
        self._index = {t: i for i, t in enumerate(model.tasks)}

    def forward(self, batch, task: str) -> torch.Tensor:
        h = self.encoder(batch.words, batch.chars, batch.mask, getattr(batch, "lengths", None))
        return self.heads[task](h[self._index[task]])
