"""Readers of tabular multi-task data: any CSV/Parquet, census-income KDD, MovieLens-100K, Student.

Every reader takes files or a directory and returns :class:`TabularData` (train/dev/test). Bad tables
fail with ``DataError(path, line, fault)`` naming the file, line and column: a missing column, a row
with more or fewer fields than the header, invalid UTF-8, a non-numeric value in a numeric column, a
column mixing numbers and text, a column with no values at all. Labels that load but cannot be scored
as usual (a split with one class or none labelled) are listed by ``TabularData.problems()``.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparseshare.data.tabular import (
    MISSING,
    NUMBER,
    Encoder,
    RawTable,
    TabularData,
    assemble,
    split_rows,
    target,
)
from sparseshare.errors import ConfigError, DataError


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


def safe_task_name(column: str) -> str:
    """The task name of a label column: each run of characters other than ``[A-Za-z0-9_-]`` becomes '_',
    stripped of '_' at both ends (task names become file and folder names and module keys)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", column).strip("_")
    if not name:
        raise ConfigError(f"target column '{column}' has no letter or digit to name its task; rename it")
    return name


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


def read_table(
    train: str | Path,
    targets: Mapping[str, str],
    *,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    exclude: Sequence[str] = (),
    sep: str = ",",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    min_count: int = 2,
) -> TabularData:
    """Generic reader: ``targets`` maps label columns to 'binary' (0/1) or 'regression'.

    Each label column is the task :func:`safe_task_name` names (``task_columns`` keeps which). Features are
    all other columns except ``exclude``; undeclared ones are numeric or categorical by their values (see
    :func:`column_kind`). A split without its own file is carved from ``train`` at random with
    ``fractions`` (train, dev, test).
    """
    tasks: dict[str, str] = {}
    for column in targets:
        task = safe_task_name(column)
        if task in tasks:
            raise ConfigError(f"target columns '{tasks[task]}' and '{column}' both become task '{task}'")
        tasks[task] = column
    tables = {s: read_any(p, sep) for s, p in (("train", train), ("dev", dev), ("test", test)) if p}
    base = tables["train"]
    for t in tables.values():
        for c in list(targets) + list(numeric) + list(categorical) + list(exclude):
            t.raw(c)  # a missing column fails here, naming the file
    for c, k in targets.items():
        target(base, c, k)  # a label column without any label fails; a split without one is a problem
    rest = [s for s in ("dev", "test") if s not in tables]
    if rest:
        share = [fractions[0]] + [fractions[1 if s == "dev" else 2] for s in rest]
        parts = split_rows(base.num_rows, share, seed)
        tables["train"] = base.take(parts[0])
        tables.update({s: base.take(p) for s, p in zip(rest, parts[1:])})
    features = [c for c in base.columns if c not in targets and c not in exclude]
    declared = {**{c: "numeric" for c in numeric}, **{c: "categorical" for c in categorical}}
    kind = {c: declared.get(c) or column_kind(base, c) for c in features}
    num, cat = ([c for c in features if kind[c] == k] for k in ("numeric", "categorical"))
    enc = Encoder.fit([tables["train"]], num, cat, min_count)
    parts_ = {
        s: [(t, {k: target(t, c, targets[c], False) for k, c in tasks.items()})] for s, t in tables.items()
    }
    return assemble(enc, parts_, {k: targets[c] for k, c in tasks.items()}, tasks)


# census-income KDD (UCI), column order of census-income.names; 41 = income label, 24 = instance weight
CENSUS_COLUMNS = (
    "age", "class of worker", "detailed industry recode", "detailed occupation recode", "education",
    "wage per hour", "enroll in edu inst last wk", "marital stat", "major industry code",
    "major occupation code", "race", "hispanic origin", "sex", "member of a labor union",
    "reason for unemployment", "full or part time employment stat", "capital gains", "capital losses",
    "dividends from stocks", "tax filer stat", "region of previous residence", "state of previous residence",
    "detailed household and family stat", "detailed household summary in household", "instance weight",
    "migration code-change in msa", "migration code-change in reg", "migration code-move within reg",
    "live in this house 1 year ago", "migration prev res in sunbelt", "num persons worked for employer",
    "family members under 18", "country of birth father", "country of birth mother",
    "country of birth self", "citizenship", "own business or self employed",
    "fill inc questionnaire for veteran's admin", "veterans benefits", "weeks worked in year", "year",
    "income",
)  # fmt: skip
CENSUS_NUMERIC = (
    "age", "wage per hour", "capital gains", "capital losses", "dividends from stocks",
    "num persons worked for employer", "weeks worked in year",
)  # fmt: skip
CENSUS_FILES = {
    "train": ("census_income_1994_1995_train.csv", "census-income.data"),
    "test": ("census_income_1994_1995_test.csv", "census-income.test"),
}


def _find(directory: Path, names: Sequence[str]) -> Path:
    for n in names:
        if (directory / n).is_file():
            return directory / n
    raise DataError(directory / names[0], None, f"missing data file (looked for {list(names)})")


def _labels(table: RawTable, column: str, positive: Sequence[str], negative: Sequence[str]) -> np.ndarray:
    s = table.strings(column)
    pos, neg = pc.is_in(s, value_set=pa.array(positive)), pc.is_in(s, value_set=pa.array(negative))
    bad = pc.invert(pc.or_(pos, neg)).to_numpy(zero_copy_only=False)
    if bad.any():
        i = int(np.argmax(bad))
        raise table.error(i, f"column '{column}': unexpected value '{s[i].as_py()}'")
    return pos.to_numpy(zero_copy_only=False).astype(np.float32)


def read_census(directory: str | Path, *, seed: int = 0, min_count: int = 2) -> TabularData:
    """Census-income KDD as in MMoE (Ma et al. 2018) and PBFS: tasks 'income' (> 50K) and 'marital'.

    'marital' is 1 for "Never married", 0 otherwise. Features: the 39 columns other than the two labels
    and the instance weight (column 24, a sampling weight the UCI description says not to use as a
    feature); 7 continuous columns are numeric, the rest (coded recodes too) categorical. The official
    test file is split 1:1 into dev and test with ``seed``.
    """
    directory = Path(directory)
    files = {
        s: read_csv(_find(directory, n), ",", header=False, names=CENSUS_COLUMNS)
        for s, n in CENSUS_FILES.items()
    }
    dev, test = (files["test"].take(h) for h in split_rows(files["test"].num_rows, (1, 1), seed))
    tables = {"train": files["train"], "dev": dev, "test": test}
    drop = {"income", "marital stat", "instance weight"}
    features = [c for c in CENSUS_COLUMNS if c not in drop]
    categorical = [c for c in features if c not in CENSUS_NUMERIC]
    enc = Encoder.fit([tables["train"]], list(CENSUS_NUMERIC), categorical, min_count)
    never = ("Never married",)
    married = ("Married-civilian spouse present", "Married-spouse absent", "Married-A F spouse present",
               "Divorced", "Separated", "Widowed")  # fmt: skip
    parts = {
        s: [(t, {"income": _labels(t, "income", ("50000+.", "50000+"), ("- 50000.", "- 50000")),
                 "marital": _labels(t, "marital stat", never, married)})]
        for s, t in tables.items()
    }  # fmt: skip
    return assemble(enc, parts, {"income": "binary", "marital": "binary"})


def _read_atomic(path: Path) -> RawTable:
    """A RecBole atomic file: tab-separated, header ``name:type``; unquoted (titles hold quotes)."""
    t = read_csv(path, "\t", header=True, quote=None)
    names = [n.split(":")[0] for n in t.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(path, 1, f"duplicate column names {dup} (without their ':type')")
    return RawTable(t.path, dict(zip(names, t.columns.values())), t.lines)


def _lookup(inter: RawTable, key: str, table: RawTable) -> pa.Array:
    idx = pc.index_in(inter.strings(key), value_set=table.strings(key).combine_chunks())
    if idx.null_count:
        i = int(np.argmax(idx.is_null().to_numpy(zero_copy_only=False)))
        raise inter.error(i, f"column '{key}': '{inter.strings(key)[i].as_py()}' is not in {table.path}")
    return pc.fill_null(idx, 0).combine_chunks()


def read_movielens(
    directory: str | Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.3,
    dev_fraction: float = 0.1,
    identify_users: bool = False,
    min_count: int = 2,
) -> TabularData:
    """MovieLens-100K (RecBole atomic files ml-100k.inter/.user/.item), PBFS Section 4.1.

    Tasks: 'rating' (binary, rating > 3) and 'age' (regression, min-max scaled to [0, 1] on train; age
    is then not a feature). Ratings are split 7:3 into train/test at random; dev is ``dev_fraction`` of
    the train part (so 63/7/30). Features: item id, release year, genres (multi-hot), gender, occupation
    and the zip code's first character. User id and full zip code identify the user, whose age every test
    row's user already shows in train, so they are left out unless ``identify_users``.
    """
    d = Path(directory)
    inter, user, item = (_read_atomic(d / f"ml-100k.{e}") for e in ("inter", "user", "item"))
    ui, ii = _lookup(inter, "user_id", user), _lookup(inter, "item_id", item)
    years = item.strings("release_year")  # one item has 'unkonwn' (sic): not a year, so missing
    years = pc.if_else(pc.match_substring_regex(years, r"^\d{4}$"), years, "")
    cols: dict = {"item_id": inter.raw("item_id"), "release_year": years.take(ii)}
    for c in ("gender", "occupation", "zip_code", "user_id"):
        cols[c] = user.strings(c).take(ui)
    cols["zip_region"] = pc.utf8_slice_codeunits(cols["zip_code"], 0, 1)
    item_genres = [set(gs.split()) for gs in item.strings("class").to_pylist()]
    ii_np = ii.to_numpy()
    for g in sorted(set().union(*item_genres)):
        cols[f"genre={g}"] = np.array([g in gs for gs in item_genres], dtype=np.float64)[ii_np]
    table = RawTable(inter.path, cols, inter.lines)
    rating = (inter.numeric("rating") > 3).astype(np.float32)
    age = user.numeric("age")[ui.to_numpy()]
    if not np.isfinite(age).all():
        raise user.error(None, "column 'age' has missing values")
    train_dev, test = split_rows(table.num_rows, (1 - test_fraction, test_fraction), seed)
    tr, dv = (train_dev[p] for p in split_rows(len(train_dev), (1 - dev_fraction, dev_fraction), seed + 1))
    lo, hi = age[tr].min(), age[tr].max()
    scaled = ((age - lo) / max(hi - lo, 1e-12)).astype(np.float32)
    numeric = ["release_year"] + [c for c in cols if c.startswith("genre=")]
    categorical = ["item_id", "gender", "occupation", "zip_region"] + (
        ["user_id", "zip_code"] if identify_users else []
    )
    rows = {"train": tr, "dev": dv, "test": test}
    enc = Encoder.fit([table.take(tr)], numeric, categorical, min_count)
    parts = {s: [(table.take(r), {"rating": rating[r], "age": scaled[r]})] for s, r in rows.items()}
    return assemble(enc, parts, {"rating": "binary", "age": "regression"})


STUDENT_NUMERIC = ("age", "Medu", "Fedu", "traveltime", "studytime", "failures", "famrel", "freetime",
                   "goout", "Dalc", "Walc", "health", "absences")  # fmt: skip


def read_student(
    directory: str | Path,
    subjects: Sequence[str] = ("por", "mat"),
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    min_count: int = 2,
) -> TabularData:
    """UCI Student Performance (student-{por,mat}.csv): tasks ``{subject}_G1..G3``, grades / 20.

    G1 and G2 are tasks, never inputs. Each subject's file is split at random with ``fractions``; with
    several subjects the rows are stacked, a 'subject' feature is added, and a row has NaN labels for
    the other subjects' tasks (use ``data.for_tasks([task])`` as each task's data).
    """
    d, parts = Path(directory), {"train": [], "dev": [], "test": []}
    kinds = {f"{s}_G{k}": "regression" for s in subjects for k in (1, 2, 3)}
    for i, subject in enumerate(subjects):
        t = read_csv(d / f"student-{subject}.csv", ";")
        if len(subjects) > 1:
            t.columns["subject"] = pa.chunked_array([pa.array([subject] * t.num_rows)])
        grades = {f"{subject}_G{k}": target(t, f"G{k}", "regression") / 20.0 for k in (1, 2, 3)}
        for split, rows in zip(parts, split_rows(t.num_rows, fractions, seed + i)):
            parts[split].append((t.take(rows), {k: v[rows] for k, v in grades.items()}))
    first = parts["train"][0][0]
    features = [c for c in first.columns if c not in ("G1", "G2", "G3")]
    categorical = [c for c in features if c not in STUDENT_NUMERIC]
    enc = Encoder.fit([t for t, _ in parts["train"]], list(STUDENT_NUMERIC), categorical, min_count)
    return assemble(enc, parts, kinds)
