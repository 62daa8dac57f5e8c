"""Penn Treebank word/TAG files (``tagged/.../wsj_SSNN.pos``) as a POS task split by file number.

The layout: ``word/TAG`` tokens separated by spaces and newlines, ``[ ... ]`` around base noun phrases
(dropped here), lines of ``=`` between paragraphs, slashes inside words escaped (``1\\/2/CD``: the tag is
after the last slash; the word keeps its ``\\/``, as CoNLL-2000, which comes from the same text).
A token with two tags (``VBG|NN``, the annotators' doubt) keeps the first.

The files mark no sentence ends: blank lines separate the tagger's chunks, and a chunk can end
mid-sentence. A sentence here ends at a blank line or a ``=`` line whose preceding text ends with
sentence-final punctuation (tag ``.``, for ``. ? !``) possibly followed by closing quotes or brackets,
unless the next line starts with a closing quote or bracket (it still belongs to the sentence);
a ``=`` line and the end of a file always end one. On NLTK's 199-file sample this gives 3,831
sentences and 94,200 tokens; its parsed (``.mrg``) layer has 3,914 trees, since headlines and
signatures without final punctuation are trees of their own there.
"""

from __future__ import annotations

import re
from pathlib import Path

from sparseshare.data.conll import read_text
from sparseshare.data.readers import Example, Tasks
from sparseshare.errors import ConfigError, DataError

# inclusive ranges of the 4-digit file number (section * 100 + file)
PTB_SPLITS = {
    # the standard WSJ POS split (Collins 2002; Chen et al. 2018, whose setting the paper's Exp3 follows):
    # sections 00-18 train, 19-21 dev, 22-24 test
    "wsj": {"train": (0, 1899), "dev": (1900, 2199), "test": (2200, 2499)},
    # NLTK's free sample (files 0001-0199, sections 00-01): the last 40 files held out, 20 each
    "sample": {"train": (1, 159), "dev": (160, 179), "test": (180, 199)},
}
_FILE = re.compile(r"wsj_(\d{4})\.pos")
_SEPARATOR = re.compile(r"=+")
_CLOSING = ("''", ")", "-RRB-")


def _ends_sentence(tags: list[str]) -> bool:
    i = len(tags) - 1
    while i >= 0 and tags[i] in _CLOSING:
        i -= 1
    return i >= 0 and tags[i] == "."


def read_pos_file(path: str | Path) -> list[Example]:
    """One ``.pos`` file's sentences as (words, tags); malformed tokens name the file and line."""
    path = Path(path)
    sents: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    gap = False  # a blank line since the last token

    def close() -> None:
        nonlocal words, tags
        if words:
            sents.append((words, tags))
        words, tags = [], []

    for lineno, line in enumerate(read_text(path).split("\n"), start=1):
        fields = line.split()
        if not fields:
            gap = True
            continue
        if len(fields) == 1 and _SEPARATOR.fullmatch(fields[0]):
            close()
            continue
        first_tag = next((t for t in fields if t not in ("[", "]")), "").rpartition("/")[2]
        if gap and _ends_sentence(tags) and first_tag not in _CLOSING:
            close()
        gap = False
        in_np = False
        for tok in fields:
            if tok in ("[", "]"):
                if (tok == "[") == in_np:
                    raise DataError(path, lineno, f"unbalanced base-NP bracket '{tok}'")
                in_np = tok == "["
                continue
            word, slash, tag = tok.rpartition("/")
            if not slash or not word or not tag or word.endswith("\\"):
                raise DataError(path, lineno, f"token '{tok}' is not word/TAG")
            words.append(word)
            tags.append(tag.split("|")[0])
        if in_np:
            raise DataError(path, lineno, "base-NP bracket '[' not closed on its line")
    close()
    if not sents:
        raise DataError(path, None, "no word/TAG tokens")
    return sents


def ptb_files(root: str | Path) -> dict[int, Path]:
    """File number -> path of every ``wsj_SSNN.pos`` under ``root`` (searched recursively)."""
    found: dict[int, Path] = {}
    for p in sorted(Path(root).rglob("wsj_*.pos")):
        m = _FILE.fullmatch(p.name)
        if m:
            n = int(m.group(1))
            if n in found:
                raise DataError(p, None, f"second copy of wsj_{n:04d}.pos (first: {found[n]})")
            found[n] = p
    if not found:
        raise DataError(root, None, "no wsj_SSNN.pos files")
    return found


def ptb_tasks(root: str | Path, tasks=("pos",), split: str = "auto") -> Tasks:
    """POS tagging from the Penn Treebank's word/TAG files: {"pos": {train, dev, test}}.

    ``split`` names a rule of ``PTB_SPLITS`` (file-number ranges): ``wsj`` (sections 00-18/19-21/22-24)
    or ``sample`` (NLTK's files 1-159/160-179/180-199); ``auto`` picks ``sample`` when no file is past
    0199, else ``wsj``. Files outside the rule's ranges are not read.
    """
    if tuple(tasks) != ("pos",):
        raise ConfigError(f"unknown ptb task(s) {[t for t in tasks if t != 'pos'] or []}; valid: ['pos']")
    files = ptb_files(root)
    if split == "auto":
        split = "sample" if max(files) < 200 else "wsj"
    if split not in PTB_SPLITS:
        raise ConfigError(f"unknown PTB split rule '{split}'; valid: {['auto', *PTB_SPLITS]}")
    out = {}
    for name, (lo, hi) in PTB_SPLITS[split].items():
        chosen = [p for n, p in sorted(files.items()) if lo <= n <= hi]
        if not chosen:
            raise DataError(root, None, f"no .pos files numbered {lo:04d}-{hi:04d} for the {name} split")
        out[name] = [ex for p in chosen for ex in read_pos_file(p)]
    return {"pos": out}
