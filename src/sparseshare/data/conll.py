"""Column files with one token per line (CoNLL-2000/2003 style); blank lines end sentences.

Every fault names the file and 1-based line: an empty file, a row whose column count differs from the
file's first row, a missing tag column, bytes that are not UTF-8. Nothing is silently dropped.
Columns are separated by ASCII spaces or tabs only, so a token holding e.g. a no-break space stays whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from sparseshare.errors import DataError

Sentence = list[list[str]]
NumberedSentence = list[tuple[int, list[str]]]  # (1-based line, columns) per token

_SEP = re.compile(r"[ \t]+")
_BLANK = " \t\r\f\v"


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8, an optional BOM dropped); a missing file or a bad byte names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def read_rows(
    path: str | Path,
    min_columns: int | None = None,
    comments: bool = False,
    sep: str | None = None,
    ragged: bool = False,
) -> list[NumberedSentence]:
    """Like :func:`read_columns`, each row paired with its line number, for errors raised later.

    ``sep`` splits columns on that exact string instead of runs of spaces/tabs (e.g. ``"\\t"`` where
    words hold spaces). ``ragged`` asks for the same column count only within a sentence, not the whole
    file (CoNLL-2012 has one column per predicate of the sentence); ``min_columns`` then holds per sentence.
    """
    path = Path(path)
    text = read_text(path)
    if not text.strip(_BLANK + "\n"):
        raise DataError(path, None, "empty file")
    sentences: list[NumberedSentence] = []
    current: NumberedSentence = []
    width = None
    # split on "\n" only: str.splitlines would also break at U+0085, U+2028, ... and shift line numbers
    for lineno, line in enumerate(text.split("\n"), start=1):
        if comments and line.startswith("#"):
            continue
        if sep is None:
            line = line.strip(_BLANK)
            fields = _SEP.split(line) if line else []
        else:
            line = line.rstrip("\r")
            fields = line.split(sep) if line.strip(_BLANK) else []
        if not fields or fields[0] == "-DOCSTART-":  # a blank line, or a document separator
            if current:
                sentences.append(current)
                current = []
                width = None if ragged else width
            continue
        if width is None:
            width = len(fields)
            if min_columns is not None and width < min_columns:
                raise DataError(path, lineno, f"tag column {min_columns} missing: found {width} column(s)")
        elif len(fields) != width:
            raise DataError(path, lineno, f"expected {width} columns, found {len(fields)}")
        current.append((lineno, fields))
    if current:
        sentences.append(current)
    if not sentences:
        raise DataError(path, None, "no sentences (only document separators or comments)")
    return sentences


def read_columns(path: str | Path, min_columns: int | None = None, comments: bool = False) -> list[Sentence]:
    """Sentences as lists of token rows (lists of column strings).

    ``-DOCSTART-`` lines separate documents and are skipped; ``#`` lines are comments only when
    ``comments`` is true (in CoNLL-2003 a ``#`` can be a token).
    """
    return [[row for _, row in sent] for sent in read_rows(path, min_columns, comments)]


def write_columns(path: str | Path, sentences: list[Sentence]) -> None:
    """Write sentences in the layout :func:`read_columns` reads (space-separated, blank line after each)."""
    lines = []
    for i, sent in enumerate(sentences):
        for row in sent:
            bad = [c for c in row if not c or _SEP.search(c) or "\n" in c or "\r" in c]
            if bad:
                raise ValueError(f"sentence {i}: cell {bad[0]!r} is empty or holds whitespace")
            lines.append(" ".join(row))
        lines.append("")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
