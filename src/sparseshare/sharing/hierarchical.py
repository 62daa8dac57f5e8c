"""Hierarchical sharing (Søgaard and Goldberg 2016): low-level tasks supervised at lower BiLSTM layers.

Eq. 3 of the sparse-sharing paper: task t's decoder reads layer l_t of a stacked BiLSTM, so it is
trained through layers 1..l_t only. The paper's setting (Exp1/Exp3) is a 2-layer BiLSTM with POS at the
inner (1st) layer and chunking and NER at the outer (2nd) one; ``DEFAULT_LEVELS`` also puts the
synthetic position-prediction task at layer 2. Built out of a base tagger with at least as many layers:
its stacked BiLSTM is run one layer at a time (``split_layers``, same weights), dropout is applied to
whichever layer output a decoder reads ("before the output layer"), and layers above the highest
supervised one are dropped, since no loss would ever reach them. With every task on the top layer this
is exactly hard sharing over the base network.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sparseshare.models.tagger import CharCNN, TagHeads, bilstm, embed_words, split_layers

DEFAULT_LEVELS: dict[str, int] = {"pos": 1, "chunk": 2, "ner": 2, "position": 2}


class HierarchicalEncoder(nn.Module):
    """Shared input layer and a stack of BiLSTM layers whose every output can be read."""

    def __init__(
        self,
        word_embed: nn.Embedding,
        char_cnn: CharCNN | None,
        layers: list[nn.LSTM],
        dropout: float = 0.5,
        word_dropout: float = 0.0,
        run_lstm=bilstm,
    ):
        super().__init__()
        if not layers:
            raise ValueError("hierarchical sharing needs at least one BiLSTM layer")
        self.word_embed = word_embed
        self.char_cnn = char_cnn
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        self.layers = nn.ModuleList(layers)
        self.out_dim = 2 * layers[-1].hidden_size
        self.run_lstm = run_lstm  # the base tagger's: packed (bilstm) or not (model.packing)

    def forward(
        self,
        words: torch.Tensor,
        chars: torch.Tensor,
        mask: torch.Tensor,
        depth: int | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The (dropped-out) output of layer ``depth`` (1-based; default the top); no higher layer runs."""
        depth = depth or len(self.layers)
        p = self.word_dropout if self.training else 0.0
        x = self.drop(embed_words(self.word_embed, self.char_cnn, words, chars, p))
        for lstm in self.layers[:depth]:
            x = self.run_lstm(lstm, x, mask, lengths)  # no dropout between layers, as in the base network
        return self.drop(x)


class HierarchicalSharing(TagHeads, nn.Module):
    """Task t's decoder on BiLSTM layer ``levels[t]``; a step is a plain optimizer step.

    ``levels`` maps task -> 1-based layer, over ``DEFAULT_LEVELS``; a task named in neither goes to
    the base network's top layer. The base model's input layer and decoders are taken over, its BiLSTM
    is split into per-layer modules, so the base model itself should not be trained afterwards.
    """

    def __init__(self, model: nn.Module, levels: Mapping[str, int] | None = None):
        super().__init__()
        base = model.encoder
        layers = split_layers(base.lstm)
        mapping = {**DEFAULT_LEVELS, **(levels or {})}
        self.levels = {t: int(mapping.get(t, len(layers))) for t in model.tasks}
        bad = {t: lv for t, lv in self.levels.items() if not 1 <= lv <= len(layers)}
        if bad:
            raise ValueError(
                f"supervision layers {bad} are outside the base network's 1..{len(layers)} BiLSTM layers"
            )
        depth = max(self.levels.values())
        self.encoder = HierarchicalEncoder(
            base.word_embed, base.char_cnn, layers[:depth], base.drop.p, base.word_dropout, base.run_lstm
        )
        self.heads = model.heads

    def forward(self, batch, task: str) -> torch.Tensor:
        h = self.encoder(
            batch.words, batch.chars, batch.mask, self.levels[task], getattr(batch, "lengths", None)
        )
        return self.heads[task](h)

    def task_parameter_names(self, task: str) -> list[str]:
        """The input layer, BiLSTM layers 1..levels[task] and the task's decoder."""
        depth = self.levels[task]
        return [
            n
            for n, _ in self.named_parameters()
            if n.startswith(f"heads.{task}.")
            or (n.startswith("encoder.") and not n.startswith("encoder.layers."))
            or (n.startswith("encoder.layers.") and int(n.split(".")[2]) < depth)
        ]
