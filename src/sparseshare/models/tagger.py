"""The sequence-labelling base network of the sparse-sharing paper (Ma and Hovy 2016 CNN-BiLSTM).

Char-CNN word features (Table 2: 30 filters, width 3) concatenated with word embeddings, dropout,
a 1- or 2-layer BiLSTM (hidden 200), dropout, then one decoder per task (linear, or a CRF as in
Exp3). Optional word dropout replaces training words by <unk>. The encoder is the base network E
whose weight matrices are pruned; embeddings and decoders are excluded from pruning and `# Params`.
The helpers ``embed_words``, ``bilstm`` and ``split_layers`` let the soft and hierarchical sharing
baselines build their networks out of this one (the paper: "used as building block"). The BiLSTM runs
on packed sentences (``bilstm``), or with ``packing=False`` unpacked (``bilstm_unpacked``: dense kernels,
no per-time-step packing cost, other float rounding; opt-in).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sparseshare.models.decoders import build_decoder

UNK_ID = 1  # word and char vocabularies reserve 0 = <pad>, 1 = <unk> (sparseshare.data.sequence)


class CharCNN(nn.Module):
    """Character embeddings -> 1-D convolution -> max over characters (per word)."""

    def __init__(self, n_chars: int, char_dim: int = 30, filters: int = 30, width: int = 3):
        super().__init__()
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size=width, padding=width // 2)
        self.filters = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        b, t, c = chars.shape
        x = self.embed(chars.reshape(b * t, c)).transpose(1, 2)  # [BT, dim, C]
        h = self.conv(x)
        h = h.masked_fill((chars.reshape(b * t, 1, c) == 0), float("-inf"))
        h = h.max(dim=2).values
        h = torch.where(torch.isinf(h), torch.zeros_like(h), h)  # padding words: all chars pad
        return h.reshape(b, t, self.filters)


def drop_words(words: torch.Tensor, p: float) -> torch.Tensor:
    """Word dropout: each non-padding word id becomes <unk> with probability ``p``; padding (0) stays."""
    if p <= 0:
        return words
    hit = (torch.rand(words.shape, device=words.device) < p) & (words != 0)
    return words.masked_fill(hit, UNK_ID)


def embed_words(
    word_embed: nn.Embedding,
    char_cnn: CharCNN | None,
    words: torch.Tensor,
    chars: torch.Tensor,
    word_dropout: float = 0.0,
) -> torch.Tensor:
    """Word embedding (after word dropout, if any) concatenated with char-CNN features: the BiLSTM input."""
    x = word_embed(drop_words(words, word_dropout))
    if char_cnn is not None:
        x = torch.cat([x, char_cnn(chars)], dim=-1)
    return x


def bilstm(
    lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Run ``lstm`` over the unpadded part of each sentence; padding positions come out as zeros.

    ``lengths`` (on the CPU, as packing wants them) spares a device-to-host copy of ``mask.sum(1)``.
    A batch without padding (every sentence as long as the batch, as length buckets often make them)
    runs the LSTM on the tensor itself: packing it would only sort, copy and unsort it, and the numbers
    are the packed run's bit for bit (tests/models/test_tagger_shapes.py).
    """
    lengths = lengths if lengths is not None else mask.sum(1).cpu()
    if bool((lengths == x.shape[1]).all()):
        return lstm(x)[0].contiguous()  # the packed run's layout: dropout draws in memory order
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


def bilstm_unpacked(
    lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`bilstm` without packing: the same function of each sentence, with other float rounding.

    Each layer runs its forward direction on the padded batch as it is (padding comes after a sentence,
    so it never reaches the sentence's states) and its backward direction on every sentence reversed in
    place (``t -> length - 1 - t``, the padding left at the end), whose outputs are put back in order;
    padding positions come out as zeros. Every call sees the batch's own shape, nothing is sorted or
    packed, and the LSTM runs as one dense kernel per direction (oneDNN on a CPU: no per-time-step
    slicing, whose backward zero-fills a full-size gradient at every step of the packed run). Fixed
    shapes (``SequenceData(pad_to=...)``) then make few shapes in all. The numbers differ from the packed
    run's in the last bits, so it is an option (``build_tagger(packing=False)``), not the default. On a
    GPU, cuDNN takes one direction's weights out of the module's flat buffer per call (a copy; cuDNN
    runs packed batches natively, so there the packed default is the one to measure against).
    ``lengths`` is taken for :func:`bilstm`'s signature; the lengths are read from ``mask`` where it is.
    """
    if not lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
        raise ValueError("bilstm_unpacked runs a bidirectional, batch-first LSTM without projections")
    b, t, _ = x.shape
    pos = torch.arange(t, device=x.device)
    rev = torch.where(mask, mask.sum(1, keepdim=True) - 1 - pos, pos).unsqueeze(2)  # [B, T, 1]
    zeros = x.new_zeros(1, b, lstm.hidden_size)
    h = x
    for layer in range(lstm.num_layers):
        if layer and lstm.dropout and lstm.training:
            h = nn.functional.dropout(h, lstm.dropout, True)
        outs = []
        for suffix, seq in ((f"_l{layer}", h), (f"_l{layer}_reverse", h.gather(1, rev.expand_as(h)))):
            names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if lstm.bias else ())
            weights = [getattr(lstm, name + suffix) for name in names]
            outs.append(
                torch.lstm(seq, (zeros, zeros), weights, lstm.bias, 1, 0.0, lstm.training, False, True)[0]
            )
        outs[1] = outs[1].gather(1, rev.expand_as(outs[1]))
        h = torch.cat(outs, dim=2)
    return h.masked_fill(~mask.unsqueeze(2), 0.0)


@torch.no_grad()
def split_layers(lstm: nn.LSTM) -> list[nn.LSTM]:
    """A stacked LSTM as one single-layer LSTM per layer with the same weights (same outputs, run in turn)."""
    width = lstm.hidden_size * (2 if lstm.bidirectional else 1)
    ref = lstm.weight_ih_l0
    out = []
    for layer in range(lstm.num_layers):
        one = nn.LSTM(
            lstm.input_size if layer == 0 else width,
            lstm.hidden_size,
            bias=lstm.bias,
            batch_first=lstm.batch_first,
            bidirectional=lstm.bidirectional,
        ).to(device=ref.device, dtype=ref.dtype)
        for name, p in one.named_parameters():
            p.copy_(getattr(lstm, name.replace("_l0", f"_l{layer}")))
        out.append(one)
    return out


class TaggerEncoder(nn.Module):
    """Word + char-CNN features -> BiLSTM states; the shared base network."""

    def __init__(
        self,
        n_words: int,
        n_chars: int,
        word_dim: int = 100,
        char_dim: int = 30,
        char_filters: int = 30,
        char_width: int = 3,
        hidden: int = 200,
        layers: int = 1,
        dropout: float = 0.5,
        embeddings: torch.Tensor | None = None,
        freeze_embeddings: bool = False,
        word_dropout: float = 0.0,
        packing: bool = True,
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
        self.word_embed.weight.requires_grad_(not freeze_embeddings)
        self.char_cnn = CharCNN(n_chars, char_dim, char_filters, char_width) if char_filters > 0 else None
        self.drop = nn.Dropout(dropout)
        self.word_dropout = word_dropout
        in_dim = word_dim + (char_filters if self.char_cnn is not None else 0)
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.out_dim = 2 * hidden
        self.run_lstm = bilstm if packing else bilstm_unpacked

    def forward(
        self, words: torch.Tensor, chars: torch.Tensor, mask: torch.Tensor, lengths=None
    ) -> torch.Tensor:
        p = self.word_dropout if self.training else 0.0
        x = self.drop(embed_words(self.word_embed, self.char_cnn, words, chars, p))
        return self.drop(self.run_lstm(self.lstm, x, mask, lengths))


class TagHeads:
    """Task-facing methods of a tagger with a decoder per task in ``heads``; ``forward(batch, task)``
    gives the task's emissions. Mixed into the tagger and the tagger mechanisms:
    ``class M(TagHeads, nn.Module)``."""

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def loss(self, batch, task: str) -> torch.Tensor:
        return self.task_loss(self(batch, task), batch, task)

    def task_loss(self, out: torch.Tensor, batch, task: str) -> torch.Tensor:
        """Loss of ``task`` given an output ``out`` (mechanisms compute ``out`` their own way)."""
        return self.heads[task].loss(out, batch.tags, batch.mask)

    def predict(self, batch, task: str) -> list[list[int]]:
        """Tag ids per sentence, unpadded."""
        return self.task_predict(self(batch, task), batch, task)

    def task_predict(self, out: torch.Tensor, batch, task: str) -> list[list[int]]:
        return self.heads[task].decode(out, batch.mask)

    def step(self, optimizer: torch.optim.Optimizer, task: str | None = None) -> None:
        optimizer.step()

    def task_parameter_names(self, task: str) -> list[str]:
        """The whole encoder and the task's own decoder (a subclass narrows the encoder part)."""
        return [n for n, _ in self.named_parameters() if n.startswith(("encoder.", f"heads.{task}."))]


class MultiTaskTagger(TagHeads, nn.Module):
    """One encoder + one decoder per task: ``forward(batch, task) -> logits [B, T, n_tags(task)]``."""

    def __init__(self, encoder: nn.Module, heads: Mapping[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))

    def forward(self, batch, task: str) -> torch.Tensor:
        h = self.encoder(batch.words, batch.chars, batch.mask, getattr(batch, "lengths", None))
        return self.heads[task](h)


def build_tagger(
    n_words: int,
    n_chars: int,
    n_tags: Mapping[str, int],
    word_dim: int = 100,
    char_dim: int = 30,
    char_filters: int = 30,
    char_width: int = 3,
    hidden: int = 200,
    layers: int = 1,
    dropout: float = 0.5,
    embeddings: torch.Tensor | None = None,
    decoder: str = "linear",
    word_dropout: float = 0.0,
    packing: bool = True,
) -> MultiTaskTagger:
    """The paper's tagger (defaults: Table 2) with one ``decoder`` ('linear' or 'crf') per task.

    ``packing=False`` runs the BiLSTM unpacked (:func:`bilstm_unpacked`: dense kernels, the batch's own
    shape; the same function with other float rounding, so opt-in)."""
    enc = TaggerEncoder(
        n_words,
        n_chars,
        word_dim,
        char_dim,
        char_filters,
        char_width,
        hidden,
        layers,
        dropout,
        embeddings,
        word_dropout=word_dropout,
        packing=packing,
    )
    return MultiTaskTagger(enc, {t: build_decoder(decoder, enc.out_dim, k) for t, k in n_tags.items()})
