"""Tabular multi-task data in memory: encoded train/dev/test splits and their batches.

Rows are kept encoded (``encoder.py``: standardized numerics and one slot index per categorical) and
expanded to dense ``x`` per batch. Labels are float, one column per task; NaN = no label for the row
(skipped by losses and metrics). :func:`assemble` encodes raw tables (``raw_table.py``) into
:class:`TabularData`. Readers: ``data/tabular_readers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sparseshare.data.encoder import Encoder, dense_features
from sparseshare.data.raw_table import RawTable

SPLITS = ("train", "dev", "test")


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
        rows = rows.to(self.num.device, non_blocking=True)
        return TabularSplit(self.num[rows], self.cat[rows], {t: v[rows] for t, v in self.y.items()})

    def to(self, device: torch.device) -> TabularSplit:
        return TabularSplit(
            self.num.to(device), self.cat.to(device), {t: v.to(device) for t, v in self.y.items()}
        )


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
                y = self.splits[split].y[task].cpu().numpy()
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
        return {t: v.cpu().numpy().copy() for t, v in self.splits[split].y.items()}

    def _x(self, part: TabularSplit) -> torch.Tensor:
        return dense_features(part.num, part.cat, self.in_dim)

    def stage(self, device: torch.device | str) -> None:
        """Keep the encoded splits on ``device``: batches are then made there, no copy per batch."""
        device = torch.device(device)
        if self.splits and next(iter(self.splits.values())).num.device != device:
            self.splits = {name: s.to(device) for name, s in self.splits.items()}

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
