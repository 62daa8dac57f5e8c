"""Raw tables: a file's unencoded columns, each row's line in it, and how their values read.

A value is missing when it is one of ``MISSING``, and a number when ``NUMBER`` matches it (not 'inf',
not '1_000') and it is finite. A feature column is numeric or categorical by its values
(:func:`column_kind`); a label column is read by :func:`target`. Faults are ``DataError`` naming the file,
the line (or the row, for Parquet) and the column. Files become raw tables in ``table_files.py``; raw
tables become features in ``encoder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparseshare.errors import DataError

MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # a present value that is a number


@dataclass
class RawTable:
    """Unencoded columns of one file, with each row's line in it. Parquet has no lines (None): messages
    name rows, by their index in the file (``rows``, once rows are taken)."""

    path: str
    columns: dict[str, pa.ChunkedArray | np.ndarray]
    lines: np.ndarray | None
    rows: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def error(self, row: int | None, fault: str) -> DataError:
        if row is None or self.lines is None:
            n = row if row is None or self.rows is None else int(self.rows[row])
            return DataError(self.path, None, fault if n is None else f"row {n + 1}: {fault}")
        return DataError(self.path, int(self.lines[row]), fault)

    def raw(self, name: str):
        if name not in self.columns:
            raise self.error(None, f"missing column '{name}' (columns: {list(self.columns)})")
        return self.columns[name]

    def take(self, rows: np.ndarray) -> RawTable:
        rows = np.asarray(rows)
        cols = {
            n: c[rows] if isinstance(c, np.ndarray) else c.take(pa.array(rows))
            for n, c in self.columns.items()
        }
        if self.lines is not None:
            return RawTable(self.path, cols, self.lines[rows])
        return RawTable(self.path, cols, None, rows if self.rows is None else self.rows[rows])

    def strings(self, name: str) -> pa.ChunkedArray:
        """The column as trimmed strings, null as ''."""
        col = self.raw(name)
        col = pa.chunked_array([pa.array(col)]) if isinstance(col, np.ndarray) else col
        if not pa.types.is_string(col.type):
            try:
                col = pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise self.error(None, f"column '{name}': {col.type} values cannot be read as text") from None
        return pc.fill_null(pc.utf8_trim_whitespace(col), "")

    def numeric(self, name: str) -> np.ndarray:
        """The column as float64 with NaN for missing values; a non-number fails with its line."""
        col = self.raw(name)
        if isinstance(col, np.ndarray):
            return col.astype(np.float64)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            out = pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy()
        else:
            s = self.strings(name)
            s = pc.if_else(pc.is_in(s, value_set=pa.array(MISSING)), pa.scalar(None, pa.string()), s)
            bad = pc.invert(pc.fill_null(pc.match_substring_regex(s, NUMBER), True))
            if pc.any(bad).as_py():
                i = int(np.argmax(bad.to_numpy(zero_copy_only=False)))
                raise self.error(i, f"column '{name}': non-numeric value '{s[i].as_py()}'")
            out = pc.fill_null(pc.cast(s, pa.float64()), np.nan).to_numpy()
        if np.isinf(out).any():  # '1e999', or inf in a Parquet file: it would turn every mean into inf
            i = int(np.argmax(np.isinf(out)))
            raise self.error(
                i, f"column '{name}': value '{self.strings(name)[i].as_py()}' is not a finite number"
            )
        return out


def column_kind(table: RawTable, name: str) -> str:
    """'numeric' when every present value is a number (or a Parquet number), 'categorical' when none is.

    A column mixing both fails, naming its first text value: one stray word must not make a numeric column
    categorical, nor many numbers be one-hot buckets; the table config declares which it is.
    """
    col = table.raw(name)
    if isinstance(col, np.ndarray):
        return "numeric"
    t = col.type
    if any(
        f(t) for f in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)
    ):
        return "numeric"
    if pa.types.is_null(t):
        return "numeric"  # no value at all: the encoder reports it
    if pa.types.is_temporal(t):
        return "categorical"  # dates, times: one category per value
    s = table.strings(name)  # text, bytes, dictionary; other types fail there
    present = pc.invert(pc.is_in(s, value_set=pa.array(MISSING)))
    text = pc.and_(present, pc.invert(pc.match_substring_regex(s, NUMBER)))
    n_present, n_text = (pc.sum(m).as_py() or 0 for m in (present, text))
    if n_text == 0:
        return "numeric"  # (all missing included: the encoder reports it)
    if n_text == n_present:
        return "categorical"
    i = int(np.argmax(text.to_numpy(zero_copy_only=False)))
    raise table.error(
        i,
        f"column '{name}' mixes numbers and text (first text value '{s[i].as_py()}'; {n_text} of {n_present} "
        "values are text): declare it under 'numeric' or 'categorical' in the table config",
    )


def target(table: RawTable, column: str, kind: str, required: bool = True) -> np.ndarray:
    """A label column as float32 (NaN = missing); binary labels must be 0 or 1; ``required``: some are
    present (else a split without labels is a :meth:`TabularData.problems` line)."""
    v = table.numeric(column)
    if required and len(v) and not np.isfinite(v).any():
        raise table.error(None, f"target column '{column}' has no values (all missing)")
    if kind == "binary":
        bad = np.isfinite(v) & (v != 0) & (v != 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise table.error(i, f"column '{column}': binary target must be 0 or 1, got {v[i]:g}")
    return v.astype(np.float32)
