"""Table files read into raw tables: CSV (with a header line, or named columns) and Parquet.

Every CSV column is read as text (types are decided later, by ``raw_table.column_kind``) and every row
keeps its line in the file, so a fault names the file and line: invalid UTF-8, a row with more or fewer
fields than the header, a quote never closed, an empty or header-only file, duplicate or unnamed columns.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from sparseshare.data.raw_table import RawTable
from sparseshare.errors import DataError


def read_csv(
    path: str | Path, sep: str = ",", header: bool = True, names: Sequence[str] | None = None, quote='"'
) -> RawTable:
    """All columns as strings (types are decided later); ``quote=None`` for unquoted formats.

    Each row keeps its line in the file (quoted line breaks and blank lines counted), and every fault
    pyarrow reports without one is found again here with its line: invalid UTF-8, a row with more or
    fewer fields than the header, a quote never closed.
    """
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        data.decode("utf-8")  # (a check: rows are parsed from the bytes)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            path, line, f"invalid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8"
        ) from None
    records = _records(path, data, sep, quote)
    first = next(records, None)
    if header:
        if first is None:
            raise DataError(path, 1, "empty file (no header line)")
        if first[:2] != (1, 1):
            raise DataError(
                path, 1, "the header must be line 1 alone (a blank line or a line break in a name)"
            )
        names = [n.strip() for n in first[2]]
        first = next(records, None)
    if names is None:
        raise ValueError("a headerless CSV needs column names")
    if first is None:
        raise DataError(path, None, "no data rows (only a header)" if header else "empty file (no rows)")
    dup = sorted({n for n in names if list(names).count(n) > 1})
    if dup:
        raise DataError(path, 1 if header else None, f"duplicate column names {dup}")
    if header and "" in names:
        raise DataError(path, 1, f"column {names.index('') + 1} has no name in the header")
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=list(names), skip_rows=1 if header else 0),
            parse_options=pacsv.ParseOptions(
                delimiter=sep,
                quote_char=quote or False,
                newlines_in_values=bool(quote and quote.encode() in data),
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as e:
        _row_lines(path, data, sep, quote, names, header)  # raises the fault with its line
        raise DataError(path, None, f"cannot read as CSV: {e}") from None
    lines = _row_lines(path, data, sep, quote, names, header, fast=table.num_rows)
    return RawTable(str(path), {n: table.column(n) for n in names}, lines)


def _lines(data: bytes) -> io.TextIOWrapper:
    """The text of ``data`` as the csv module reads a file, decoded as it goes."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")


def _records(path: Path, data: bytes, sep: str, quote):
    """(first line, last line, fields) of each non-blank record; a malformed one fails with its line."""
    opts: dict = {"quoting": csv.QUOTE_NONE} if quote is None else {"quotechar": quote}
    reader = csv.reader(_lines(data), delimiter=sep, **opts)
    start = 1
    try:
        for fields in reader:
            if fields:
                yield start, reader.line_num, fields
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(path, start, f"cannot read as CSV: {e}") from None


def _row_lines(path, data: bytes, sep, quote, names, header, fast: int | None = None) -> np.ndarray:
    """The line of each data row, checking its number of fields (``fast``: the rows pyarrow found).

    A file with as many lines as rows (no blank line, no line break in a value) needs no scan.
    """
    first = 2 if header else 1
    if fast is not None:
        ends = data.count(b"\n") + (not data.endswith((b"\n", b"\r")))
        if b"\r" in data:  # a lone '\r' ends a line too
            ends += data.count(b"\r") - data.count(b"\r\n")
        if ends == fast + first - 1:
            return np.arange(fast) + first
    lines, last = [], (0, 0)
    for last in itertools.islice(_records(path, data, sep, quote), 1 if header else 0, None):
        if len(last[2]) != len(names):
            as_header = " (as the header)" if header else ""
            raise DataError(path, last[0], f"expected {len(names)} fields{as_header}, found {len(last[2])}")
        lines.append(last[0])
    if quote and last[0] < last[1]:  # a last row over several lines: maybe a quote that never closes
        rest = "".join(itertools.islice(_lines(data), last[0] - 1, None))
        try:
            list(csv.reader(io.StringIO(rest, newline=""), delimiter=sep, quotechar=quote, strict=True))
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise DataError(
                    path, last[0], f"a quote ({quote}) opened on this line is never closed"
                ) from None
    if fast is not None and len(lines) != fast:
        raise DataError(path, None, f"cannot read as CSV: rows are ambiguous ({fast} or {len(lines)})")
    return np.array(lines, dtype=np.int64)


def read_any(path: str | Path, sep: str = ",") -> RawTable:
    """A CSV (with a header line) or a Parquet file (by suffix .parquet/.pq)."""
    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".pq"):
        return read_csv(path, sep)
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, None, f"cannot read as Parquet: {e}") from None
    dup = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if dup:
        raise DataError(path, None, f"duplicate column names {dup}")
    if not table.num_rows:
        raise DataError(path, None, "no data rows")
    return RawTable(str(path), {n: table.column(n) for n in table.column_names}, None)
