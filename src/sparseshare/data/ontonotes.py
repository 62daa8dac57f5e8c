"""OntoNotes 5.0 English in the CoNLL-2012 layout (``*_conll`` files) as POS, chunking and NER tasks.

Columns (Pradhan et al. 2012): 0 document id, 1 part, 2 word number, 3 word, 4 POS, 5 parse bit,
6-9 predicate lemma/frameset/sense/speaker, 10 named entities, then one column per predicate and the
coreference column, so the column count changes from sentence to sentence. ``#begin document`` /
``#end document`` lines are skipped. As in the sparse-sharing paper (Sun et al. 2020, "Datasets"), the
``pt`` (Bible) genre is excluded, having no NER annotation; NER becomes BIOES and chunks BIO2.

Chunks come from the parse bits (the paper converts them "as the same as CoNLL-2003" without giving the
rule; this is ours, a simple approximation of the CoNLL-2000 chunks of Tjong Kim Sang and Buchholz):

1. A token's phrase is the lowest phrase containing it, where phrases inside a noun phrase (QP, NML,
   NX, NAC) hand their tokens to the phrase above; labels lose function tags (NP-SBJ -> NP) and
   WH-phrases count as their plain category (WHNP -> NP, WHADVP -> ADVP, WHADJP -> ADJP, WHPP -> PP).
2. A chunk is a maximal run of consecutive tokens with the same phrase, less punctuation at its edges.
3. A run that directly follows a run of the same category, inside that run's phrase, extends its
   chunk (verb chains: "has been eaten", "wanted to go" are one VP).
4. Chunk types are CoNLL-2000's eleven (NP VP PP ADVP ADJP SBAR PRT CONJP INTJ LST UCP); tokens whose
   phrase is anything else (S, SINV, SQ, SBARQ, FRAG, PRN, TOP, ...) and punctuation are O.

So "(PP in (NP the hat))" gives B-PP B-NP I-NP, as CoNLL-2000 does. It differs from CoNLL-2000 where a
chunk there spans a phrase boundary, e.g. "has n't been" (here three chunks: VP, ADVP, VP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sparseshare.data.conll import NumberedSentence, read_rows
from sparseshare.data.readers import Example, Tasks, check_tasks, retag
from sparseshare.errors import DataError

ONTONOTES_COLUMNS = {"word": 3, "pos": 4, "parse": 5, "ner": 10}
ONTONOTES_SPLITS = {"train": ("train",), "dev": ("development", "dev"), "test": ("test",)}
LANGUAGES = ("arabic", "chinese", "english")
EXCLUDED_GENRES = ("pt",)
CHUNK_TYPES = ("NP", "VP", "PP", "ADVP", "ADJP", "SBAR", "PRT", "CONJP", "INTJ", "LST", "UCP")
_FOLDED = ("QP", "NML", "NX", "NAC")
_WH = {"WHNP": "NP", "WHADVP": "ADVP", "WHADJP": "ADJP", "WHPP": "PP"}
_PUNCT = (",", ".", ":", "``", "''", "-LRB-", "-RRB-", "NFP")
_PARSE_BIT = re.compile(r"((?:\([^()*\s]+)*)\*(\)*)")
_NER_BIT = re.compile(r"(?:\(([^()*\s]+))?(\*?)(\)?)")


@dataclass
class _Phrase:
    category: str
    parent: _Phrase | None

    def inside(self, other: _Phrase) -> bool:
        node = self.parent
        while node is not None and node is not other:
            node = node.parent
        return node is other


def _category(label: str) -> str:
    base = label if label.startswith("-") else re.split(r"[-=]", label)[0]
    return _WH.get(base, base)


def _token_phrases(path: Path, lines: list[int], bits: list[str]) -> list[_Phrase]:
    """Each token's lowest phrase (folding rule 1), from the sentence's parse bits."""
    stack: list[_Phrase] = []
    out = []
    for line, bit in zip(lines, bits):
        m = _PARSE_BIT.fullmatch(bit)
        if m is None:
            raise DataError(path, line, f"parse bit '{bit}' is not (LABEL...*)...")
        for label in re.findall(r"\(([^()*\s]+)", m.group(1)):
            stack.append(_Phrase(_category(label), stack[-1] if stack else None))
        if not stack:
            raise DataError(path, line, f"parse bit '{bit}': token outside any phrase")
        node = stack[-1]
        while node.category in _FOLDED and node.parent is not None:
            node = node.parent
        out.append(node)
        closes = len(m.group(2))
        if closes > len(stack):
            raise DataError(path, line, f"parse bit '{bit}' closes {closes} phrases, {len(stack)} open")
        del stack[len(stack) - closes :]
    if stack:
        raise DataError(path, lines[-1], f"parse tree not closed at the sentence end ({len(stack)} open)")
    return out


def parse_chunks(path: Path, lines: list[int], bits: list[str], pos: list[str]) -> list[str]:
    """BIO2 chunk tags of one sentence from its parse bits and POS tags (rules in the module doc)."""
    phrases = _token_phrases(path, lines, bits)
    runs: list[tuple[int, int, _Phrase]] = []  # [start, end) of a run, its phrase
    start = 0
    for i in range(1, len(phrases) + 1):
        if i == len(phrases) or phrases[i] is not phrases[start]:
            lo, hi = start, i
            while lo < hi and pos[lo] in _PUNCT:
                lo += 1
            while hi > lo and pos[hi - 1] in _PUNCT:
                hi -= 1
            if lo < hi and phrases[start].category in CHUNK_TYPES:
                runs.append((lo, hi, phrases[start]))
            start = i
    tags = ["O"] * len(phrases)
    prev: tuple[int, int, _Phrase] | None = None
    for lo, hi, phrase in runs:
        extends = (
            prev is not None
            and prev[1] == lo
            and prev[2].category == phrase.category
            and phrase.inside(prev[2])
        )
        for i in range(lo, hi):
            tags[i] = f"{'I' if extends or i > lo else 'B'}-{phrase.category}"
        prev = (lo, hi, phrase)
    return tags


def ner_bio2(path: Path, lines: list[int], bits: list[str]) -> list[str]:
    """BIO2 NER tags from the bracketed column: ``(TYPE*`` opens, ``*)`` closes, ``(TYPE)`` is one token."""
    tags, current = [], None
    for line, bit in zip(lines, bits):
        m = _NER_BIT.fullmatch(bit)
        if m is None or not (m.group(2) or (m.group(1) and m.group(3))):
            raise DataError(path, line, f"named-entity bit '{bit}' is not *, (TYPE*, *) or (TYPE)")
        opened, closes = m.group(1), bool(m.group(3))
        if opened:
            if current is not None:
                raise DataError(path, line, f"entity '{opened}' opens inside entity '{current}'")
            current = opened
            tags.append(f"B-{opened}")
        else:
            tags.append("O" if current is None else f"I-{current}")
        if closes:
            if current is None:
                raise DataError(path, line, f"named-entity bit '{bit}' closes no entity")
            current = None
    if current is not None:
        raise DataError(path, lines[-1], f"entity '{current}' not closed at the sentence end")
    return tags


def _kept(path: Path, sent: NumberedSentence) -> bool:
    """False for a sentence of an excluded genre (document ids like ``pt/nt/40/nt_4001``)."""
    docs = {row[0] for _, row in sent}
    if len(docs) != 1:
        raise DataError(path, sent[0][0], f"one sentence spans documents {sorted(docs)}")
    for i, (line, row) in enumerate(sent):
        if row[2] != str(i):
            raise DataError(path, line, f"word number '{row[2]}', expected {i}")
    return docs.pop().split("/")[0] not in EXCLUDED_GENRES


def read_conll2012(path: str | Path, tasks=("pos", "chunk", "ner")) -> dict[str, list[Example]]:
    """One ``*_conll`` file as task -> examples; sentences of excluded genres are dropped."""
    path = Path(path)
    sents = [s for s in read_rows(path, min_columns=11, comments=True, ragged=True) if _kept(path, s)]
    lines = [[ln for ln, _ in s] for s in sents]
    col = {k: [[row[i] for _, row in s] for s in sents] for k, i in ONTONOTES_COLUMNS.items()}
    tags = {}
    if "pos" in tasks:
        tags["pos"] = col["pos"]
    if "chunk" in tasks:
        tags["chunk"] = [parse_chunks(path, *a) for a in zip(lines, col["parse"], col["pos"])]
    if "ner" in tasks:
        bio2 = [ner_bio2(path, ls, bits) for ls, bits in zip(lines, col["ner"])]
        tags["ner"] = retag(path, "ner", bio2, lines, "bio2")
    return {t: list(zip(col["word"], tags[t])) for t in tasks}


def ontonotes_files(root: str | Path, language: str = "english") -> dict[str, list[Path]]:
    """split -> the ``*_conll`` files under ``root/train``, ``root/development`` (or ``dev``), ``root/test``.

    Files of other languages (a path part ``arabic``/``chinese``/``english`` other than ``language``),
    of excluded genres (a path part ``pt``) and ``*auto_conll`` files (predicted layers) are left out.
    """
    root = Path(root)
    out = {}
    for split, names in ONTONOTES_SPLITS.items():
        folder = next((root / n for n in names if (root / n).is_dir()), None)
        if folder is None:
            raise DataError(root, None, f"no {' or '.join(names)} folder for the {split} split")
        files = [
            p
            for p in sorted(folder.rglob("*_conll"))
            if not p.name.endswith("auto_conll")
            and all(part not in LANGUAGES or part == language for part in p.relative_to(root).parts)
            and not any(part in EXCLUDED_GENRES for part in p.relative_to(root).parts[:-1])
        ]
        if not files:
            raise DataError(folder, None, f"no {language} *_conll files")
        out[split] = files
    return out


def ontonotes_tasks(root: str | Path, tasks=("pos", "chunk", "ner"), language: str = "english") -> Tasks:
    """OntoNotes 5.0 (CoNLL-2012 layout under ``root``) as task -> split -> examples (module doc)."""
    tasks = check_tasks("ontonotes", tasks, ("pos", "chunk", "ner"))
    out: Tasks = {t: {} for t in tasks}
    for split, files in ontonotes_files(root, language).items():
        per_file = [read_conll2012(p, tasks) for p in files]
        for t in tasks:
            out[t][split] = [ex for f in per_file for ex in f[t]]
        if not out[tasks[0]][split]:
            raise DataError(root, None, f"no {split} sentences outside genres {list(EXCLUDED_GENRES)}")
    return out
