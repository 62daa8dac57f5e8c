"""The sequence tagger over a transformer encoder (Hugging Face ``transformers``, ``sparseshare[hf]``): the
experiment configs' ``model.transformer`` in place of the char-CNN + BiLSTM.

Batches are the tagger's (word ids ``[B, T]``, a mask, each task's tags), so every system built from the
base network (single task, hard sharing, sparse sharing and its controls) runs unchanged. Each word of
the run's vocabulary is a row of a sub-word table (``pieces [V, K]``, ``piece_lengths [V]``): one piece,
the word itself, for a BERT with random weights over that vocabulary; a pretrained tokenizer's first K
sub-words otherwise. A sentence's pieces run through the encoder between its [CLS] and [SEP] (when it has
them) and each word is the state of its first sub-word (the usual alignment of word tags to sub-words);
the task's decoder (linear or CRF, ``models/decoders.py``) reads it.

IMP (Sun et al., AAAI 2020, Algorithm 1) then prunes the attention and feed-forward matrices: the
default globs leave out embeddings, biases and decoders, LayerNorms are vectors, and the pooler (which
no tagging loss reaches) is dropped. The table is a buffer, stored with the weights, so ``predict`` and
``export`` need no tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sparseshare.models.decoders import build_decoder
from sparseshare.models.hf import require_transformers
from sparseshare.models.tagger import MultiTaskTagger


class TransformerWords(nn.Module):
    """``(words [B, T], chars, mask [B, T], lengths) -> [B, T, hidden]``: a transformer over each
    sentence's sub-word pieces, a word's state its first piece's, zeros at padding.

    ``hf_config``: a ``transformers`` config as a dict (``config.to_dict()``; ``model_type`` names the
    architecture); ``specials``: the ``cls``, ``sep`` and ``pad`` token ids (``cls``/``sep`` None: none
    put around a sentence)."""

    def __init__(
        self,
        hf_config: Mapping[str, Any],
        n_words: int,
        max_pieces: int = 1,
        specials: Mapping[str, int | None] | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        transformers = require_transformers()
        if "auto_map" in hf_config:
            raise ValueError("hf_config names remote code (auto_map); only built-in architectures build")
        if max_pieces < 1:
            raise ValueError(f"max_pieces must be >= 1, got {max_pieces}")
        config = transformers.AutoConfig.for_model(**hf_config)
        self.model = transformers.AutoModel.from_config(config)
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # no tagging loss reaches it: neither trained nor pruned
        specials = dict(specials or {})
        self.cls, self.sep, self.pad = specials.get("cls"), specials.get("sep"), specials.get("pad") or 0
        self.positions = int(config.max_position_embeddings)
        self.out_dim = int(config.hidden_size)
        self.register_buffer("pieces", torch.zeros(n_words, max_pieces, dtype=torch.long))
        self.register_buffer("piece_lengths", torch.ones(n_words, dtype=torch.long))
        with torch.no_grad():
            self.pieces[:, 0] = torch.arange(n_words)  # one piece per word: the word's own id
        self.drop = nn.Dropout(dropout)

    def set_pieces(self, pieces: torch.Tensor, lengths: torch.Tensor) -> None:
        """A tokenizer's sub-words per vocabulary word: ``pieces [V, K]`` ids, ``lengths [V]`` in 1..K."""
        if pieces.shape != self.pieces.shape or lengths.shape != self.piece_lengths.shape:
            raise ValueError(
                f"pieces {tuple(pieces.shape)} / lengths {tuple(lengths.shape)}, want "
                f"{tuple(self.pieces.shape)} / {tuple(self.piece_lengths.shape)}"
            )
        if bool((lengths < 1).any() or (lengths > pieces.shape[1]).any()):
            raise ValueError(f"piece lengths must be in 1..{pieces.shape[1]}")
        with torch.no_grad():
            self.pieces.copy_(pieces)
            self.piece_lengths.copy_(lengths)

    def input_ids(self, words: torch.Tensor, mask: torch.Tensor):
        """(input ids ``[B, S]``, attention mask ``[B, S]``, each word's first-piece position ``[B, T]``)."""
        b = words.shape[0]
        lens = self.piece_lengths[words] * mask.long()
        start = 1 if self.cls is not None else 0
        first = start + lens.cumsum(1) - lens
        total = start + lens.sum(1) + (1 if self.sep is not None else 0)
        s = max(int(total.max()), 1)
        if s > self.positions:
            raise ValueError(
                f"a sentence of {s} tokens (sub-words and specials) exceeds the encoder's {self.positions} "
                "positions: fewer pieces per word (model.transformer.max_pieces) or shorter sentences"
            )
        ids = words.new_full((b, s), self.pad)
        rows = torch.arange(b, device=words.device).unsqueeze(1).expand_as(words)
        table = self.pieces[words]
        for k in range(table.shape[-1]):
            at = k < lens
            ids[rows[at], (first + k)[at]] = table[..., k][at]
        if self.cls is not None:
            ids[:, 0] = self.cls
        if self.sep is not None:
            ids[torch.arange(b, device=words.device), total - 1] = self.sep
        attention = (torch.arange(s, device=words.device) < total.unsqueeze(1)).long()
        return ids, attention, first.clamp(max=s - 1)

    def forward(self, words, chars=None, mask=None, lengths=None) -> torch.Tensor:
        mask = words != 0 if mask is None else mask
        ids, attention, first = self.input_ids(words, mask)
        h = self.model(input_ids=ids, attention_mask=attention).last_hidden_state
        h = h.gather(1, first.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        return self.drop(h) * mask.unsqueeze(-1).to(h.dtype)


def transformer_tagger(
    n_words: int,
    n_tags: Mapping[str, int],
    hf_config: Mapping[str, Any],
    max_pieces: int = 1,
    specials: Mapping[str, int | None] | None = None,
    dropout: float = 0.0,
    decoder: str = "linear",
    pieces: tuple[torch.Tensor, torch.Tensor] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> MultiTaskTagger:
    """The tagger over :class:`TransformerWords`, a ``decoder`` per task; ``dropout`` before the decoders.

    ``pieces`` (a tokenizer's table) and ``weights`` (a pretrained encoder's state dict, its pooler
    left out) are given when a run builds it, never from a recipe file: the trained state holds both."""
    enc = TransformerWords(hf_config, n_words, max_pieces, specials, dropout)
    if pieces is not None:
        enc.set_pieces(*pieces)
    if weights is not None:
        missing, unexpected = enc.model.load_state_dict(
            {k: v for k, v in weights.items() if not k.startswith("pooler.")}, strict=False
        )
        if missing or unexpected:
            raise ValueError(
                f"pretrained weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
    return MultiTaskTagger(enc, {t: build_decoder(decoder, enc.out_dim, n) for t, n in n_tags.items()})
