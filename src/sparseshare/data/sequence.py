"""In-memory sequence-labelling tasks: vocabularies, integer encoding (once), padded batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from sparseshare.data.conll import read_columns
from sparseshare.data.tagging import convert_tags, detect_iob1
from sparseshare.errors import DataError

PAD, UNK = "<pad>", "<unk>"
Example = tuple[list[str], list[str]]  # (words, tags)


class Vocab:
    """String <-> id. Word/char vocabularies reserve 0 = <pad>, 1 = <unk>; tag vocabularies do not."""

    def __init__(self, itos: Iterable[str], unk: bool = True):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.unk = self.stoi.get(UNK) if unk else None

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        if self.unk is None:
            return [self.stoi[t] for t in tokens]
        return [self.stoi.get(t, self.unk) for t in tokens]

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, extra: Iterable[str] = ()) -> Vocab:
        counts = Counter(tokens)
        kept = {t for t, c in counts.items() if c >= min_count} | set(extra)
        kept -= {PAD, UNK}
        return cls([PAD, UNK] + sorted(kept))

    @classmethod
    def tags(cls, tags: Iterable[str]) -> Vocab:
        return cls(sorted(set(tags)), unk=False)


@dataclass
class Batch:
    words: torch.Tensor  # [B, T] long
    chars: torch.Tensor  # [B, T, C] long
    mask: torch.Tensor  # [B, T] bool, True on real tokens
    tags: torch.Tensor  # [B, T] long, 0 at padding
    index: torch.Tensor  # [B] sentence positions in the split

    def to(self, device) -> Batch:
        return Batch(
            self.words.to(device),
            self.chars.to(device),
            self.mask.to(device),
            self.tags.to(device),
            self.index,
        )

    @property
    def size(self) -> int:
        return self.words.shape[0]


def build_shared_vocabs(
    task_sentences: list[list[Example]], lower: bool = True, extra_words: Iterable[str] = ()
) -> tuple[Vocab, Vocab]:
    """Word and char vocabularies over every task's training words (tasks share the encoder).

    ``extra_words`` are added to the word vocabulary: the runner passes dev/test words that have a
    pretrained vector, so they keep their embedding instead of <unk> (no labels are used).
    """
    words = [w.lower() if lower else w for sents in task_sentences for ws, _ in sents for w in ws]
    chars = [c for sents in task_sentences for ws, _ in sents for w in ws for c in w]
    return Vocab.build(words, extra=extra_words), Vocab.build(chars)


class SequenceData:
    """One task's train/dev/test sentences, encoded once; ``batches`` pads per batch."""

    def __init__(
        self,
        name: str,
        splits: dict[str, list[Example]],
        word_vocab: Vocab,
        char_vocab: Vocab,
        tag_vocab: Vocab | None = None,
        lower_words: bool = True,
        max_word_len: int = 30,
    ):
        self.name, self.splits = name, splits
        self.word_vocab, self.char_vocab = word_vocab, char_vocab
        # tags form a closed set: the vocabulary covers every split, so no tag is ever unknown
        self.tag_vocab = tag_vocab or Vocab.tags(t for s in splits.values() for _, ts in s for t in ts)
        self._enc = {}
        for split, sents in splits.items():
            enc = []
            for ws, ts in sents:
                wid = torch.tensor(word_vocab.encode(w.lower() if lower_words else w for w in ws))
                cid = [torch.tensor(char_vocab.encode(w[:max_word_len])) for w in ws]
                enc.append((wid, cid, torch.tensor(self.tag_vocab.encode(ts))))
            self._enc[split] = enc

    def num_sentences(self, split: str) -> int:
        return len(self.splits[split])

    def num_tokens(self, split: str) -> int:
        return sum(len(ws) for ws, _ in self.splits[split])

    def batches(
        self, split: str, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        enc = self._enc[split]
        order = torch.randperm(len(enc), generator=generator) if shuffle else torch.arange(len(enc))
        for start in range(0, len(enc), batch_size):
            idx = order[start : start + batch_size]
            items = [enc[i] for i in idx.tolist()]
            b, t = len(items), max(len(w) for w, _, _ in items)
            c = max(len(ch) for _, cs, _ in items for ch in cs)
            words = torch.zeros(b, t, dtype=torch.long)
            chars = torch.zeros(b, t, c, dtype=torch.long)
            tags = torch.zeros(b, t, dtype=torch.long)
            mask = torch.zeros(b, t, dtype=torch.bool)
            for i, (w, cs, tg) in enumerate(items):
                words[i, : len(w)] = w
                tags[i, : len(tg)] = tg
                mask[i, : len(w)] = True
                for j, ch in enumerate(cs):
                    chars[i, j, : len(ch)] = ch
            yield Batch(words, chars, mask, tags, idx)


CONLL03_COLUMNS = {"pos": 1, "chunk": 2, "ner": 3}
CONLL03_SPLITS = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}
CONLL03_TARGET = {"pos": None, "chunk": "bio2", "ner": "bioes"}  # the paper: BIO2 chunking, BIOES NER


def conll03_tasks(
    root: str | Path, tasks=("pos", "chunk", "ner"), limits: dict[str, int] | None = None
) -> dict[str, dict[str, list[Example]]]:
    """CoNLL-2003 English as three tasks over the same sentences; ``limits`` keeps the first N per split."""
    root = Path(root)
    out: dict[str, dict[str, list[Example]]] = {t: {} for t in tasks}
    for split, fname in CONLL03_SPLITS.items():
        sents = read_columns(root / fname, min_columns=4)
        if len(sents[0][0]) != 4:
            raise DataError(
                root / fname, 1, f"expected 4 columns (word POS chunk NER), found {len(sents[0][0])}"
            )
        n = (limits or {}).get(split)
        sents = sents[:n] if n else sents
        for t in tasks:
            col = CONLL03_COLUMNS[t]
            seqs = [[row[col] for row in s] for s in sents]
            target = CONLL03_TARGET[t]
            if target is not None:
                src = "iob1" if any(detect_iob1(s) for s in seqs) else "bio2"
                seqs = [convert_tags(s, src, target) for s in seqs]
            out[t][split] = [([row[0] for row in s], tags) for s, tags in zip(sents, seqs)]
    return out
