"""Feature encoding of raw tables, fitted on train rows only, and the dense rows it lays out.

``x`` is dense and already encoded: standardized numerics (missing -> 0, the train mean), then a one-hot
block per categorical whose slot 0 is the unknown bucket (values unseen in train or seen fewer than
``min_count`` times there, so the bucket is trained). One-hot keeps every model a plain MLP on ``[B, F]``;
storage stays compact (one slot index per categorical) and one-hot rows are built per batch
(:func:`dense_features`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from sparseshare.data.raw_table import RawTable


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


def dense_features(num: torch.Tensor, cat: torch.Tensor, in_dim: int) -> torch.Tensor:
    """``[N, in_dim]`` rows: the numerics, then a 1 in each categorical's one-hot column."""
    x = torch.zeros(num.shape[0], in_dim, device=num.device)
    x[:, : num.shape[1]] = num
    if cat.shape[1]:
        x.scatter_(1, cat.long(), 1.0)
    return x
