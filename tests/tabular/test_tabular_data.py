"""Tabular data: train-only encoding, batches, the generic reader and its errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sparseshare.data.tabular import TabularData
from sparseshare.data.tabular_readers import read_table
from sparseshare.errors import DataError


def _write(path, header, rows, sep=","):
    path.write_text("\n".join([sep.join(header)] + [sep.join(map(str, r)) for r in rows]) + "\n")
    return path


HEADER = ["num", "color", "click", "spend"]


def _files(tmp_path):
    train = _write(tmp_path / "train.csv", HEADER,
                   [[1, "red", 1, 0.5], [2, "red", 0, 1.5], [3, "blue", 1, 2.5], [4, "blue", 0, ""],
                    [5, "green", 1, 3.0]])  # fmt: skip
    dev = _write(tmp_path / "dev.csv", HEADER, [[3, "red", 0, 1.0], [10, "pink", 1, 2.0]])
    test = _write(tmp_path / "test.csv", HEADER, [[0, "blue", 1, 0.0]])
    return train, dev, test


def _x(data, split):
    return next(data.batches(split, 10_000)).x


def test_encoding_is_fitted_on_train_only(tmp_path):
    train, dev, test = _files(tmp_path)
    data = read_table(train, {"click": "binary", "spend": "regression"}, dev=dev, test=test)
    assert data.tasks == ["click", "spend"] and data.kinds["spend"] == "regression"
    # 'green' occurs once in train (< min_count 2) and 'pink' never: both go to the unknown bucket
    assert data.feature_names == ["num", "color=<unk>", "color=blue", "color=red"]
    x = _x(data, "dev")
    mean, std = 3.0, np.std([1, 2, 3, 4, 5])
    assert x[:, 0].tolist() == pytest.approx([0.0, (10 - mean) / std])
    assert x[:, 1:].tolist() == [[0, 0, 1], [1, 0, 0]]
    assert _x(data, "train")[4, 1:].tolist() == [1, 0, 0]  # green
    assert (_x(data, "train")[:, 1:].sum(1) == 1).all()
    y = data.labels("train")
    assert y["click"].tolist() == [1, 0, 1, 0, 1] and np.isnan(y["spend"][3])
    assert data.num_examples("train") == 5 and data.num_examples("test") == 1 and data.in_dim == 4


def test_batches_cover_every_row_once_and_shuffle_reproducibly(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[float(v), c, int(v > 0), v * 2] for v, c in zip(rng.normal(size=50), rng.choice(["p", "q"], 50))]
    data = read_table(_write(tmp_path / "t.csv", HEADER, rows), {"click": "binary", "spend": "regression"})
    assert [data.num_examples(s) for s in ("train", "dev", "test")] == [40, 5, 5]
    batches = list(data.batches("train", 16, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert [len(b.index) for b in batches] == [16, 16, 8]
    assert sorted(torch.cat([b.index for b in batches]).tolist()) == list(range(40))
    again = list(data.batches("train", 16, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert all(
        torch.equal(a.x, b.x) and torch.equal(a.y["spend"], b.y["spend"]) for a, b in zip(batches, again)
    )
    plain = next(data.batches("train", 40)).x
    assert torch.equal(batches[0].x, plain[batches[0].index])
    moved = batches[0].to("cpu")
    assert moved.x.shape == (16, data.in_dim) and set(moved.y) == {"click", "spend"}


def test_for_tasks_keeps_the_rows_labelled_for_the_tasks():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ya = np.array([1, 0, np.nan, np.nan, 1, 0], np.float32)
    yb = np.array([np.nan, np.nan, 0.5, 0.2, 0.1, np.nan], np.float32)
    split = (x, {"a": ya, "b": yb})
    data = TabularData.from_arrays(
        {"train": split, "dev": split, "test": split}, {"a": "binary", "b": "regression"}
    )
    only_b = data.for_tasks(["b"])
    assert only_b.num_examples("dev") == 3 and np.isfinite(only_b.labels("dev")["b"]).all()
    assert data.for_tasks(["a", "b"]).num_examples("train") == 6


def test_parquet_and_declared_kinds(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"age": [20, 30, 40, 50, 60, 70, 80, 90, 25, 35], "zip": [1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
                      "y": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]})  # fmt: skip
    pq.write_table(table, path)
    data = read_table(path, {"y": "regression"}, categorical=["zip"], fractions=(0.6, 0.2, 0.2))
    assert data.feature_names == ["age", "zip=<unk>", "zip=1", "zip=2"]
    assert [data.num_examples(s) for s in ("train", "dev", "test")] == [6, 2, 2]


def test_missing_target_column_names_file_and_column(tmp_path):
    train, _, _ = _files(tmp_path)
    with pytest.raises(DataError, match="missing column 'label'") as e:
        read_table(train, {"label": "binary"})
    assert e.value.path == str(train)


def test_non_numeric_value_reports_its_line(tmp_path):
    rows = [[i, "red", i % 2, i * 0.5] for i in range(12)]
    rows[6][0] = "seven"  # line 8 (header is line 1)
    path = _write(tmp_path / "t.csv", HEADER, rows)
    with pytest.raises(DataError, match="column 'num': non-numeric value 'seven'") as e:
        read_table(path, {"click": "binary"}, numeric=["num"])  # declared numeric (undeclared: mixed)
    assert e.value.line == 8 and str(e.value).startswith(f"{path}:8:")
    rows[6][0], rows[2][3] = 6, "lots"
    with pytest.raises(DataError, match="'spend'") as e:
        read_table(_write(tmp_path / "u.csv", HEADER, rows), {"spend": "regression"})
    assert e.value.line == 4


def test_all_missing_column_and_bad_binary_label_fail(tmp_path):
    rows = [[i, "red", i % 2, "NA"] for i in range(10)]
    path = _write(tmp_path / "t.csv", HEADER, rows)
    with pytest.raises(DataError, match="'spend' has no values"):
        read_table(path, {"spend": "regression"})
    with pytest.raises(DataError, match="'spend' has no numeric values"):
        read_table(path, {"click": "binary"}, numeric=["spend"])
    rows = [[i, "red", i % 3, 1.0] for i in range(10)]
    with pytest.raises(DataError, match="binary target must be 0 or 1, got 2") as e:
        read_table(_write(tmp_path / "u.csv", HEADER, rows), {"click": "binary"})
    assert e.value.line == 4
