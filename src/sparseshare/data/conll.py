"""Column files with one token per line (CoNLL-2000/2003 style); blank lines end sentences.

Every fault names the file and 1-based line: an empty file, a row whose column count differs from the
file's first row, a missing tag column, bytes that are not UTF-8. Nothing is silently dropped.
"""

from __future__ import annotations

from pathlib import Path

from sparseshare.errors import DataError

Sentence = list[list[str]]


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def read_columns(path: str | Path, min_columns: int | None = None, comments: bool = False) -> list[Sentence]:
    """Sentences as lists of token rows; ``-DOCSTART-`` lines separate documents and are skipped."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "no such file")
    text = _decode(path)
    sentences: list[Sentence] = []
    current: Sentence = []
    width = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if comments and line.startswith("#"):
            continue
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
                current = []
            continue
        if fields[0] == "-DOCSTART-":
            if current:
                sentences.append(current)
                current = []
            continue
        if width is None:
            width = len(fields)
            if min_columns is not None and width < min_columns:
                raise DataError(path, lineno, f"tag column {min_columns} missing: found {width} column(s)")
        elif len(fields) != width:
            raise DataError(path, lineno, f"expected {width} columns, found {len(fields)}")
        current.append(fields)
    if current:
        sentences.append(current)
    if not sentences:
        raise DataError(path, None, "empty file: no sentences")
    return sentences


def write_columns(path: str | Path, sentences: list[Sentence]) -> None:
    """Write sentences back in the same layout (space-separated columns, blank line after each)."""
    lines = []
    for sent in sentences:
        lines += [" ".join(row) for row in sent] + [""]
    Path(path).write_text("\n".join(lines) + "\n")
