"""In-memory sequence-labelling tasks: vocabularies, integer encoding (once), padded batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sparseshare.data.readers import Example
from sparseshare.errors import ConfigError, DataError

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """String <-> id. Word/char vocabularies reserve 0 = <pad>, 1 = <unk>; tag vocabularies do not."""

    def __init__(self, itos: Iterable[str], unk: bool = True):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary entries must be unique")
        self.unk = self.stoi.get(UNK) if unk else None

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown ones map to <unk>, or raise KeyError in a vocabulary without one."""
        if self.unk is None:
            return [self.stoi[t] for t in tokens]
        return [self.stoi.get(t, self.unk) for t in tokens]

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, extra: Iterable[str] = ()) -> Vocab:
        """<pad>, <unk>, then (sorted, for determinism) tokens seen ``min_count`` times and ``extra``."""
        counts = Counter(tokens)
        kept = {t for t, c in counts.items() if c >= min_count} | set(extra)
        return cls([PAD, UNK] + sorted(kept - {PAD, UNK}))

    @classmethod
    def tags(cls, tags: Iterable[str]) -> Vocab:
        """A closed tag set: ids from 0, no <pad> (padding is marked by the mask), no <unk>."""
        return cls(sorted(set(tags)), unk=False)


@dataclass
class Batch:
    """Padded sentences; ``index`` holds their positions in the split, to write predictions back."""

    words: torch.Tensor  # [B, T] long, 0 at padding
    chars: torch.Tensor  # [B, T, C] long, 0 at padding
    mask: torch.Tensor  # [B, T] bool, True on real tokens
    tags: torch.Tensor  # [B, T] long, 0 at padding
    index: torch.Tensor  # [B] long
    lengths: torch.Tensor | None = None  # [B] long, on the CPU: what packing needs, without a device sync

    def to(self, device: torch.device | str) -> Batch:
        """The batch with its model inputs on ``device``; ``index`` and ``lengths`` stay on the CPU."""
        return Batch(
            self.words.to(device),
            self.chars.to(device),
            self.mask.to(device),
            self.tags.to(device),
            self.index,
            self.lengths,
        )

    @property
    def size(self) -> int:
        return self.words.shape[0]

    @property
    def n_tokens(self) -> int:
        return int(self.mask.sum())


def build_shared_vocabs(
    tasks_sentences: list[list[list[str]]] | list[list[Example]],
    lower: bool = True,
    extra_words: Iterable[str] = (),
) -> tuple[Vocab, Vocab]:
    """Word and char vocabularies over every task's training words (tasks share one encoder).

    A sentence is a word list or a (words, tags) pair. Words are lower-cased for the word vocabulary
    when ``lower`` (match ``SequenceData(lower_words=...)``); chars keep their case. ``extra_words`` join
    the word vocabulary: e.g. dev/test words with a pretrained vector, so they keep it (no labels used).
    """
    sents = [s[0] if isinstance(s, tuple) else s for task in tasks_sentences for s in task]
    words = [w.lower() if lower else w for ws in sents for w in ws]
    chars = [c for ws in sents for w in ws for c in w]
    return Vocab.build(words, extra=extra_words), Vocab.build(chars)


@dataclass
class _Split:
    """A split tensorised once: every token of every sentence in flat arrays (plus one padding token at
    the end), so a batch is a few index operations, on whatever device the arrays live on."""

    words: torch.Tensor  # [tokens + 1]
    chars: torch.Tensor  # [tokens + 1, longest word]
    tags: torch.Tensor  # [tokens + 1]
    starts: torch.Tensor  # [sentences]: each sentence's first token
    lengths: torch.Tensor  # [sentences], on the CPU
    widths: torch.Tensor  # [sentences], on the CPU: each sentence's longest word in chars
    lengths_here: torch.Tensor  # ``lengths`` beside the arrays

    def to(self, device: torch.device) -> _Split:
        move = {k: getattr(self, k).to(device) for k in ("words", "chars", "tags", "starts", "lengths_here")}
        return _Split(lengths=self.lengths, widths=self.widths, **move)

    def batch(self, ids: torch.Tensor, pad_to: int | str = 0) -> Batch:
        """Sentences ``ids`` (CPU) padded to the batch's longest sentence and longest word, each rounded
        up by :func:`padded_size` when ``pad_to`` is set."""
        dev = self.words.device
        t = padded_size(int(self.lengths[ids].max()), pad_to)
        c = padded_size(int(self.widths[ids].max()), pad_to)
        here = ids.to(dev, non_blocking=True)
        pos = torch.arange(t, device=dev)
        mask = pos < self.lengths_here[here].unsqueeze(1)
        tok = torch.where(mask, self.starts[here].unsqueeze(1) + pos, self.words.shape[0] - 1)
        chars = self.chars[tok, :c]
        if c > chars.shape[2]:  # wider than the split's longest word: all-padding columns
            chars = torch.nn.functional.pad(chars, (0, c - chars.shape[2]))
        return Batch(self.words[tok], chars, mask, self.tags[tok], ids, self.lengths[ids])


PAD_TO_POW2 = "pow2"


def check_pad_to(pad_to: int | str, where: str = "pad_to") -> int | str:
    """``pad_to`` if valid: 0 (no rounding), a positive multiple, or ``"pow2"``; else a ConfigError."""
    if pad_to == PAD_TO_POW2 or (isinstance(pad_to, int) and not isinstance(pad_to, bool) and pad_to >= 0):
        return pad_to
    raise ConfigError(f"'{where}': want 0, a positive multiple or '{PAD_TO_POW2}', got {pad_to!r}")


def padded_size(n: int, pad_to: int | str) -> int:
    """``n`` rounded up to a multiple of ``pad_to`` (an int; 0 leaves it), or to a power of two
    (``"pow2"``): what a batch is padded to, so that batches come in few shapes."""
    if pad_to == PAD_TO_POW2:
        return 1 << max(n - 1, 0).bit_length()
    return -(-n // pad_to) * pad_to if pad_to else n


class SequenceData:
    """One task's splits of (words, tags) sentences, tensorised once; ``batches`` pads per batch.

    The tag vocabulary, unless given, covers every split: tags are a closed set, so dev/test never
    meet an unknown tag. Words keep their case for the char CNN; the word ids use lower-cased words
    when ``lower_words`` (GloVe 6B is lower-case). Words longer than ``max_word_len`` chars are cut.

    ``pad_to`` (fixed shapes, off by default): every batch's sentence length and word width rounded up
    to a multiple of ``pad_to`` (e.g. 8), or to a power of two (``"pow2"``), so that a GPU kernel cache
    or ``torch.compile`` meets a few shapes instead of one per longest sentence. The model sees more
    padding and the same real tokens: the packed BiLSTM and the CRF ignore it exactly; dropout then
    draws its random numbers over the larger tensors, so a training run with it takes other numbers.
    """

    def __init__(
        self,
        name: str,
        splits: dict[str, list[Example]],
        word_vocab: Vocab,
        char_vocab: Vocab,
        tag_vocab: Vocab | None = None,
        lower_words: bool = True,
        max_word_len: int = 30,
        pad_to: int | str = 0,
    ):
        self.name, self.splits = name, splits
        self.pad_to = check_pad_to(pad_to)
        self.word_vocab, self.char_vocab = word_vocab, char_vocab
        self.tag_vocab = tag_vocab or Vocab.tags(t for s in splits.values() for _, ts in s for t in ts)
        self.lower_words, self.max_word_len = lower_words, max_word_len
        self._enc: dict[str, _Split] = {}
        self._device = torch.device("cpu")
        self.encode()

    def _check(self, split: str, i: int, words: list[str], tags: list[str]) -> None:
        fault = None
        if not words:
            fault = "empty sentence"
        elif len(words) != len(tags):
            fault = f"{len(words)} words but {len(tags)} tags"
        elif any(not w for w in words):
            fault = "empty word"
        elif any(t not in self.tag_vocab for t in tags):
            tag = next(t for t in tags if t not in self.tag_vocab)
            fault = f"tag '{tag}' not in the tag vocabulary"
        if fault:
            raise DataError(f"{self.name}/{split}", None, f"sentence {i}: {fault}")

    def encode(self) -> None:
        """Tensorise every split once: word, char and tag ids of all tokens in flat arrays."""
        for split, sents in self.splits.items():
            words, chars, tags, lengths, widths = [], [], [], [], []
            for i, (ws, ts) in enumerate(sents):
                self._check(split, i, ws, ts)
                words += self.word_vocab.encode(w.lower() if self.lower_words else w for w in ws)
                cids = [self.char_vocab.encode(w[: self.max_word_len]) for w in ws]
                chars += cids
                tags += self.tag_vocab.encode(ts)
                lengths.append(len(ws))
                widths.append(max(map(len, cids)))
            word_len = np.fromiter(map(len, chars), dtype=np.int64, count=len(chars))
            char_ids = np.zeros((len(chars) + 1, max(widths, default=1)), dtype=np.int64)
            rows = np.repeat(np.arange(len(chars)), word_len)
            cols = np.arange(int(word_len.sum())) - np.repeat(np.cumsum(word_len) - word_len, word_len)
            char_ids[rows, cols] = np.fromiter((i for c in chars for i in c), dtype=np.int64, count=len(rows))
            lengths_t = torch.tensor(lengths, dtype=torch.long)
            self._enc[split] = _Split(
                words=torch.tensor([*words, 0], dtype=torch.long),
                chars=torch.from_numpy(char_ids),
                tags=torch.tensor([*tags, 0], dtype=torch.long),
                starts=torch.cumsum(lengths_t, 0) - lengths_t,
                lengths=lengths_t,
                widths=torch.tensor(widths, dtype=torch.long),
                lengths_here=lengths_t,
            )

    def stage(self, device: torch.device | str) -> None:
        """Keep the tensorised splits on ``device``: batches are then made there, with no copy per batch."""
        device = torch.device(device)
        if device != self._device:
            self._enc = {s: e.to(device) for s, e in self._enc.items()}
            self._device = device

    def __len__(self) -> int:
        """Training sentences (what proportional task sampling weighs)."""
        return self.num_examples("train")

    @property
    def labels(self) -> list[str]:
        """Tag id -> tag string (what span F1 compares)."""
        return list(self.tag_vocab.itos)

    def num_examples(self, split: str) -> int:
        return len(self.splits[split])

    @staticmethod
    def targets(batch: Batch, task: str | None = None) -> list[list[int]]:
        """Gold tag ids of each sentence of ``batch``, unpadded."""
        lengths = getattr(batch, "lengths", None)
        lengths = (lengths if lengths is not None else batch.mask.sum(1)).tolist()
        tags = batch.tags.cpu().tolist()
        return [row[:n] for row, n in zip(tags, lengths)]

    def num_tokens(self, split: str) -> int:
        return sum(len(ws) for ws, _ in self.splits[split])

    def batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        bucket: int = 0,
        pad_to: int | str | None = None,
    ) -> Iterator[Batch]:
        """Batches of ``split`` in order (or shuffled with ``generator``), padded to the batch maximum
        (rounded up by ``pad_to``, default the data's own: see the class), made where the split is
        staged (see :meth:`stage`).

        ``bucket`` (with ``shuffle``): the shuffled sentences are cut into pools of ``bucket`` batches,
        each pool sorted by length (longest word breaking ties) and cut into batches, and the batches
        of all pools shuffled: every sentence once per pass, batches of similar lengths, little padding.
        """
        enc = self._enc[split]
        pad = self.pad_to if pad_to is None else check_pad_to(pad_to)
        n = enc.lengths.shape[0]
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if not (shuffle and bucket > 0):
            for start in range(0, n, batch_size):
                yield enc.batch(order[start : start + batch_size], pad)
            return
        pool = bucket * batch_size
        key = enc.lengths * (int(enc.widths.max()) + 1) + enc.widths if n else enc.lengths
        cut = []
        for start in range(0, n, pool):
            ids = order[start : start + pool]
            ids = ids[torch.argsort(key[ids], stable=True)]
            cut += [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
        for i in torch.randperm(len(cut), generator=generator).tolist():
            yield enc.batch(cut[i], pad)
