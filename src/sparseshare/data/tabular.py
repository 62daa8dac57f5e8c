"""Tabular multi-task data: encoded splits and batches; encoding fitted on train rows only.

``x`` is dense and already encoded: standardized numerics (missing -> 0, the train mean), then a one-hot
block per categorical whose slot 0 is the unknown bucket (values unseen in train or seen fewer than
``min_count`` times there, so the bucket is trained). One-hot keeps every model a plain MLP on ``[B, F]``;
storage stays compact (one slot index per categorical) and one-hot rows are built per batch. Labels are
float; NaN = no label for the row (skipped by losses and metrics). A value is a number when ``NUMBER``
matches it (not 'inf', not '1_000') and it is finite. Readers: ``data/tabular_readers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from sparseshare.errors import DataError

SPLITS = ("train", "dev", "test")
MISSING = ("", "?", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # a present value that is a number


@dataclass
class TabularBatch:
    """``x``: encoded features ``[B, F]``; ``y``: task -> labels ``[B]`` (NaN = none); ``index``: rows."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]
    index: torch.Tensor

    def to(self, device) -> TabularBatch:
        return TabularBatch(
            self.x.to(device), {t: v.to(device) for t, v in self.y.items()}, self.index.to(device)
        )


@dataclass
class TabularSplit:
    """Encoded rows: ``num`` float32 ``[N, Fn]``; ``cat`` int32 ``[N, C]`` (x column of each one-hot 1)."""

    num: torch.Tensor
    cat: torch.Tensor
    y: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.num.shape[0]

    def take(self, rows: torch.Tensor) -> TabularSplit:
        return TabularSplit(self.num[rows], self.cat[rows], {t: v[rows] for t, v in self.y.items()})


class TabularData:
    """Train/dev/test splits of one feature space with one label column per task."""

    def __init__(
        self,
        splits: Mapping[str, TabularSplit],
        kinds: Mapping[str, str],
        feature_names: Sequence[str],
        encoder: Encoder | None = None,
        task_columns: Mapping[str, str] | None = None,
    ):
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"tabular data lacks splits {missing}")
        self.splits = dict(splits)
        self.kinds = dict(kinds)
        self.feature_names = list(feature_names)
        self.encoder = encoder  # how raw columns became ``x`` (saved in a run, for predict)
        # task -> its label column in the files (a column name need not be a valid task name)
        self.task_columns = dict(task_columns) if task_columns else {t: t for t in self.kinds}

    def problems(self) -> list[str]:
        """One line per (task, split) whose labels cannot be evaluated as usual (for warnings).

        A split without a labelled row; a binary task with one class in a split (its AUC is undefined);
        a regression task whose train labels are all equal.
        """
        out = []
        for task, kind in self.kinds.items():
            for split in SPLITS:
                y = self.splits[split].y[task].numpy()
                y = y[np.isfinite(y)]
                same = f"all {y[0]:g} on {len(y)} labelled rows" if len(y) and (y == y[0]).all() else None
                if not len(y):
                    out.append(f"task '{task}': {split} has no labelled row")
                elif same and kind == "binary":
                    out.append(
                        f"task '{task}': {split} has one class only ({same}): its AUC is undefined there"
                    )
                elif same and kind == "regression" and split == "train":
                    out.append(f"task '{task}': train labels are constant ({same})")
        return out

    @property
    def tasks(self) -> list[str]:
        return list(self.kinds)

    @property
    def in_dim(self) -> int:
        return len(self.feature_names)

    def num_examples(self, split: str) -> int:
        """Number of rows."""
        return len(self.splits[split])

    @staticmethod
    def targets(batch: TabularBatch, task: str) -> torch.Tensor:
        """``task``'s labels in ``batch`` (NaN = no label)."""
        return batch.y[task]

    def labels(self, split: str) -> dict[str, np.ndarray]:
        """Every task's labels on ``split`` (NaN = no label), e.g. for ``pools.correlation_matrix``."""
        return {t: v.numpy().copy() for t, v in self.splits[split].y.items()}

    def _x(self, part: TabularSplit) -> torch.Tensor:
        return dense_features(part.num, part.cat, self.in_dim)

    def batches(
        self, split: str, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[TabularBatch]:
        s = self.splits[split]
        order = torch.randperm(len(s), generator=generator) if shuffle else torch.arange(len(s))
        for start in range(0, len(s), batch_size):
            idx = order[start : start + batch_size]
            part = s.take(idx)
            yield TabularBatch(self._x(part), part.y, idx)

    def for_tasks(self, tasks: Sequence[str]) -> TabularData:
        """The rows labelled for at least one of ``tasks`` (a task's TaskSpec data when subjects differ)."""
        out = {}
        for name, s in self.splits.items():
            has = torch.zeros(len(s), dtype=torch.bool)
            for t in tasks:
                has |= torch.isfinite(s.y[t])
            out[name] = s.take(torch.nonzero(has, as_tuple=True)[0])
        return TabularData(out, self.kinds, self.feature_names, self.encoder, self.task_columns)

    def limited(self, limits: Mapping[str, int]) -> TabularData:
        """The first ``limits[split]`` rows of each named split (small, deterministic runs)."""
        out = {}
        for name, s in self.splits.items():
            n = limits.get(name)
            out[name] = s.take(torch.arange(min(n, len(s)))) if n is not None else s
        return TabularData(out, self.kinds, self.feature_names, self.encoder, self.task_columns)

    @classmethod
    def from_arrays(
        cls,
        splits: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]],
        kinds: Mapping[str, str],
        feature_names: Sequence[str] | None = None,
    ) -> TabularData:
        """Numeric features only, standardized with the train split's mean and std."""
        x_train = np.asarray(splits["train"][0], dtype=np.float64)
        mean, std = np.nanmean(x_train, 0), np.nanstd(x_train, 0)
        std[~(std > 0)] = 1.0
        out = {}
        for s, (x, y) in splits.items():
            z = np.nan_to_num((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
            ys = {t: torch.as_tensor(np.asarray(y[t], dtype=np.float32)) for t in kinds}
            out[s] = TabularSplit(torch.from_numpy(z), torch.zeros(len(z), 0, dtype=torch.int32), ys)
        names = list(feature_names) if feature_names else [f"x{i}" for i in range(x_train.shape[1])]
        return cls(out, kinds, names, Encoder(names, mean, std, [], []))


def dense_features(num: torch.Tensor, cat: torch.Tensor, in_dim: int) -> torch.Tensor:
    """``[N, in_dim]`` rows: the numerics, then a 1 in each categorical's one-hot column."""
    x = torch.zeros(num.shape[0], in_dim)
    x[:, : num.shape[1]] = num
    if cat.shape[1]:
        x.scatter_(1, cat.long(), 1.0)
    return x


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


@dataclass
class Encoder:
    """Feature encoding fitted on train rows only: standardization and one-hot vocabularies."""

    numeric: list[str]
    mean: np.ndarray
    std: np.ndarray
    categorical: list[str]
    vocabs: list[list[str]]  # without the unknown bucket, which is slot 0 of each block

    @classmethod
    def fit(
        cls,
        tables: Sequence[RawTable],
        numeric: Sequence[str],
        categorical: Sequence[str],
        min_count: int = 2,
    ) -> Encoder:
        mean, std = [], []
        for name in numeric:
            v = np.concatenate([t.numeric(name) for t in tables])
            if not np.isfinite(v).any():
                raise tables[0].error(None, f"column '{name}' has no numeric values (all missing)")
            mean.append(np.nanmean(v))
            sd = np.nanstd(v)
            std.append(sd if sd > 0 else 1.0)
        vocabs = []
        for name in categorical:
            counts: dict[str, int] = {}
            for t in tables:
                vc = pc.value_counts(t.strings(name))
                for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                    counts[value] = counts.get(value, 0) + n
            vocabs.append(sorted(v for v, n in counts.items() if n >= min_count))
        return cls(list(numeric), np.array(mean), np.array(std), list(categorical), vocabs)

    def to_json(self) -> dict:
        """Everything needed to encode new rows (saved in a run directory; no training data)."""
        return {
            "numeric": self.numeric,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "categorical": self.categorical,
            "vocabs": self.vocabs,
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> Encoder:
        return cls(
            list(obj["numeric"]),
            np.asarray(obj["mean"], dtype=np.float64),
            np.asarray(obj["std"], dtype=np.float64),
            list(obj["categorical"]),
            [list(v) for v in obj["vocabs"]],
        )

    def features(self, table: RawTable) -> torch.Tensor:
        """New rows encoded as the model's input ``x`` ``[N, F]``."""
        num, cat = self.transform(table)
        return dense_features(torch.from_numpy(num), torch.from_numpy(cat), len(self.feature_names))

    @property
    def columns(self) -> list[str]:
        """The raw columns a table must have to be encoded."""
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        out = list(self.numeric)
        for name, vocab in zip(self.categorical, self.vocabs):
            out += [f"{name}=<unk>"] + [f"{name}={v}" for v in vocab]
        return out

    def transform(self, table: RawTable) -> tuple[np.ndarray, np.ndarray]:
        """(standardized numerics float32 [N, Fn], x column of each categorical's 1 int32 [N, C])."""
        n = table.num_rows
        num = np.zeros((n, len(self.numeric)), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            v = table.numeric(name)
            if n and not np.isfinite(v).any():
                raise table.error(None, f"column '{name}' has no numeric values (all missing)")
            num[:, j] = np.nan_to_num((v - self.mean[j]) / self.std[j])
        cat = np.zeros((n, len(self.categorical)), dtype=np.int32)
        offset = len(self.numeric)
        for j, (name, vocab) in enumerate(zip(self.categorical, self.vocabs)):
            idx = pc.index_in(table.strings(name), value_set=pa.array(vocab, pa.string()))
            cat[:, j] = offset + 1 + pc.fill_null(idx, -1).to_numpy()
            offset += len(vocab) + 1
        return num, cat


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


def assemble(
    encoder: Encoder,
    parts: Mapping[str, Sequence[tuple[RawTable, Mapping[str, np.ndarray]]]],
    kinds: Mapping[str, str],
    task_columns: Mapping[str, str] | None = None,
) -> TabularData:
    """Encode every split's tables (rows concatenated in order); tasks a table lacks get NaN labels."""
    splits = {}
    for split, tables in parts.items():
        nums, cats, ys = [], [], {t: [] for t in kinds}
        for table, labels in tables:
            num, cat = encoder.transform(table)
            nums.append(num)
            cats.append(cat)
            for t in kinds:
                ys[t].append(
                    np.asarray(labels[t], np.float32)
                    if t in labels
                    else np.full(len(num), np.nan, np.float32)
                )
        y = {t: torch.from_numpy(np.concatenate(v)) for t, v in ys.items()}
        splits[split] = TabularSplit(
            torch.from_numpy(np.concatenate(nums)), torch.from_numpy(np.concatenate(cats)), y
        )
    return TabularData(splits, kinds, encoder.feature_names, encoder, task_columns)


def split_rows(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """A seeded random partition of ``range(n)`` into parts of the given (normalized) fractions."""
    f = np.asarray(fractions, dtype=np.float64)
    if (f < 0).any() or f.sum() <= 0:
        raise ValueError(f"split fractions must be >= 0 with a positive sum, got {list(fractions)}")
    bounds = np.round(np.cumsum(f / f.sum()) * n).astype(int)
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(p) for p in np.split(perm, bounds[:-1])]
