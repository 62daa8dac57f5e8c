"""Readers of tabular multi-task data: any CSV/Parquet, census-income KDD, MovieLens-100K, Student.

Every reader takes files or a directory and returns :class:`TabularData` (train/dev/test). Bad tables
fail with ``DataError(path, line, fault)`` naming the file, line and column: a missing column, a row
with more or fewer fields than the header, invalid UTF-8, a non-numeric value in a numeric column, a
column mixing numbers and text, a column with no values at all, too few rows to train on or to carve
dev and test from, a numeric column too large to standardize (its mean or std overflows). Labels that
load but cannot be scored as usual (a split with one class or none labelled) are listed by
``TabularData.problems()``. Files are read by ``table_files.py``; columns are typed in ``raw_table.py``
and encoded in ``encoder.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from sparseshare.data.encoder import Encoder
from sparseshare.data.raw_table import RawTable, column_kind, target
from sparseshare.data.table_files import read_any, read_csv
from sparseshare.data.tabular import TabularData, assemble, split_rows
from sparseshare.errors import ConfigError, DataError


def safe_task_name(column: str) -> str:
    """The task name of a label column: each run of characters other than ``[A-Za-z0-9_-]`` becomes '_',
    stripped of '_' at both ends (task names become file and folder names and module keys)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", column).strip("_")
    if not name:
        raise ConfigError(f"target column '{column}' has no letter or digit to name its task; rename it")
    return name


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
    if rest:  # a fault in the values is said first: more rows would not mend it
        _enough_rows(base, tables, [s for s, f in zip(rest, share[1:]) if f > 0])
    if tables["train"].num_rows < MIN_TRAIN_ROWS:
        raise base.error(
            None, f"{tables['train'].num_rows} training row(s): training needs at least {MIN_TRAIN_ROWS}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is said below, naming the column
        enc = Encoder.fit([tables["train"]], num, cat, min_count)
        parts_ = {
            s: [(t, {k: target(t, c, targets[c], False) for k, c in tasks.items()})]
            for s, t in tables.items()
        }
        data = assemble(enc, parts_, {k: targets[c] for k, c in tasks.items()}, tasks)
    _finite_features(enc, tables, data)
    return data


MIN_TRAIN_ROWS = 2  # fewer leave no standard deviation and no correlation of labels (PBFS's pools)


def _enough_rows(base: RawTable, tables: Mapping[str, RawTable], carved: Sequence[str]) -> None:
    """A split carved from ``base`` (with a share > 0) that came out empty is a one-line error naming
    the file: its scores would be undefined after training."""
    empty = [s for s in carved if tables[s].num_rows == 0]
    if empty:
        sizes = ", ".join(f"{s} {t.num_rows}" for s, t in tables.items())
        raise base.error(
            None,
            f"{base.num_rows} data row(s) are too few to carve {' and '.join(empty)} from (rows: {sizes}); "
            f"give more rows, or 'dev' and 'test' files of their own",
        )


def _finite_features(enc: Encoder, tables: Mapping[str, RawTable], data: TabularData) -> None:
    """Refuse a numeric column whose train mean or standard deviation overflows (values near 1e308:
    every value would silently standardize to 0), or whose standardized values exceed float32 in a
    split, naming the file and the column."""
    for j, name in enumerate(enc.numeric):
        if not (np.isfinite(enc.mean[j]) and np.isfinite(enc.std[j])):
            peak = np.nanmax(np.abs(tables["train"].numeric(name)))
            raise tables["train"].error(
                None,
                f"column '{name}': values up to {peak:.3g} overflow its mean and standard deviation; "
                "rescale the column (divide it by a power of ten) or exclude it",
            )
    for split, part in data.splits.items():
        bad = ~torch.isfinite(part.num).all(0)
        if bad.any():
            name = enc.numeric[int(torch.nonzero(bad)[0])]
            raise tables[split].error(
                None,
                f"column '{name}': values too far from the train mean (in {split}) to standardize in "
                "float32; rescale the column or exclude it",
            )


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


def _kept(features: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """``features`` less ``exclude``, in order; a name that is not one of them is a ConfigError listing them
    (``data.exclude_features``: raw feature columns left out, each with its whole one-hot block)."""
    bad = [c for c in exclude if c not in features]
    if bad:
        raise ConfigError(f"exclude: unknown feature column(s) {bad}; feature columns: {list(features)}")
    return [c for c in features if c not in exclude]


def _labels(table: RawTable, column: str, positive: Sequence[str], negative: Sequence[str]) -> np.ndarray:
    s = table.strings(column)
    pos, neg = pc.is_in(s, value_set=pa.array(positive)), pc.is_in(s, value_set=pa.array(negative))
    bad = pc.invert(pc.or_(pos, neg)).to_numpy(zero_copy_only=False)
    if bad.any():
        i = int(np.argmax(bad))
        raise table.error(i, f"column '{column}': unexpected value '{s[i].as_py()}'")
    return pos.to_numpy(zero_copy_only=False).astype(np.float32)


CENSUS_FEATURES = tuple(c for c in CENSUS_COLUMNS if c not in ("income", "marital stat", "instance weight"))


def read_census(
    directory: str | Path, *, seed: int = 0, exclude: Sequence[str] = (), min_count: int = 2
) -> TabularData:
    """Census-income KDD as in MMoE (Ma et al. 2018) and PBFS: tasks 'income' (> 50K) and 'marital'.

    'marital' is 1 for "Never married", 0 otherwise. Features: the 39 columns other than the two labels
    and the instance weight (column 24, a sampling weight the UCI description says not to use as a
    feature); 7 continuous columns are numeric, the rest (coded recodes too) categorical; ``exclude``
    leaves some of :data:`CENSUS_FEATURES` out. The official test file is split 1:1 into dev and test
    with ``seed``.
    """
    directory = Path(directory)
    files = {
        s: read_csv(_find(directory, n), ",", header=False, names=CENSUS_COLUMNS)
        for s, n in CENSUS_FILES.items()
    }
    dev, test = (files["test"].take(h) for h in split_rows(files["test"].num_rows, (1, 1), seed))
    tables = {"train": files["train"], "dev": dev, "test": test}
    features = _kept(CENSUS_FEATURES, exclude)
    numeric = [c for c in CENSUS_NUMERIC if c in features]
    categorical = [c for c in features if c not in CENSUS_NUMERIC]
    enc = Encoder.fit([tables["train"]], numeric, categorical, min_count)
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


# MovieLens feature columns; 'genre' is the multi-hot block genre=<name> (the item file's 'class')
MOVIELENS_FEATURES = ("item_id", "release_year", "genre", "gender", "occupation", "zip_region")
MOVIELENS_IDENTIFYING = ("user_id", "zip_code")


def read_movielens(
    directory: str | Path,
    *,
    seed: int = 0,
    test_fraction: float = 0.3,
    dev_fraction: float = 0.1,
    identify_users: bool = False,
    exclude: Sequence[str] = (),
    min_count: int = 2,
) -> TabularData:
    """MovieLens-100K (RecBole atomic files ml-100k.inter/.user/.item), PBFS Section 4.1.

    Tasks: 'rating' (binary, rating > 3) and 'age' (regression, min-max scaled to [0, 1] on train; age
    is then not a feature). Ratings are split 7:3 into train/test at random; dev is ``dev_fraction`` of
    the train part (so 63/7/30). Features: item id, release year, genres (multi-hot), gender, occupation
    and the zip code's first character. User id and full zip code identify the user, whose age every test
    row's user already shows in train, so they are left out unless ``identify_users``. ``exclude``
    leaves some of :data:`MOVIELENS_FEATURES` out (the split and the labels stay the same).
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
    kept = _kept(MOVIELENS_FEATURES + (MOVIELENS_IDENTIFYING if identify_users else ()), exclude)
    genres = [c for c in cols if c.startswith("genre=")] if "genre" in kept else []
    numeric = [c for c in ("release_year",) if c in kept] + genres
    categorical = [c for c in ("item_id", "gender", "occupation", "zip_region", *MOVIELENS_IDENTIFYING)
                   if c in kept]  # fmt: skip
    rows = {"train": tr, "dev": dv, "test": test}
    enc = Encoder.fit([table.take(tr)], numeric, categorical, min_count)
    parts = {s: [(table.take(r), {"rating": rating[r], "age": scaled[r]})] for s, r in rows.items()}
    return assemble(enc, parts, {"rating": "binary", "age": "regression"})


# the survey's feature columns (student.txt); with several subjects a 'subject' column is added
STUDENT_FEATURES = ("school", "sex", "age", "address", "famsize", "Pstatus", "Medu", "Fedu", "Mjob", "Fjob",
                    "reason", "guardian", "traveltime", "studytime", "failures", "schoolsup", "famsup",
                    "paid", "activities", "nursery", "higher", "internet", "romantic", "famrel", "freetime",
                    "goout", "Dalc", "Walc", "health", "absences")  # fmt: skip
STUDENT_NUMERIC = ("age", "Medu", "Fedu", "traveltime", "studytime", "failures", "famrel", "freetime",
                   "goout", "Dalc", "Walc", "health", "absences")  # fmt: skip


def read_student(
    directory: str | Path,
    subjects: Sequence[str] = ("por", "mat"),
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    exclude: Sequence[str] = (),
    min_count: int = 2,
) -> TabularData:
    """UCI Student Performance (student-{por,mat}.csv): tasks ``{subject}_G1..G3``, grades / 20.

    G1 and G2 are tasks, never inputs. Each subject's file is split at random with ``fractions``; with
    several subjects the rows are stacked, a 'subject' feature is added, and a row has NaN labels for
    the other subjects' tasks (use ``data.for_tasks([task])`` as each task's data). ``exclude`` leaves
    some feature columns out (those of the file, 'subject' too).
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
    features = _kept([c for c in first.columns if c not in ("G1", "G2", "G3")], exclude)
    numeric = [c for c in STUDENT_NUMERIC if c in features]
    categorical = [c for c in features if c not in STUDENT_NUMERIC]
    enc = Encoder.fit([t for t, _ in parts["train"]], numeric, categorical, min_count)
    return assemble(enc, parts, kinds)
