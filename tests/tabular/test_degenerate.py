"""Degenerate tables (issue 22, item 5): a constant target, a one-row table, a table without targets,
a column too large to standardize, tasks that share no row. Each is refused in one line naming the file,
key or column, or warned of before training with a documented rule for PBFS's pools."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparseshare.data.tabular_readers import read_table
from sparseshare.errors import DataError
from sparseshare.sharing.pools import correlation_matrix, shared_pools
from tests.experiments.test_hostile import _rows, _run, _table, _table_run

PBFS = ["--set", "systems=[pbfs]", "--set", "train.epochs=1"]


def test_a_constant_label_correlates_zero_and_still_pools():
    from sparseshare.sharing.pools import constant_tasks

    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    y = {"a": a, "b": a + 0.1 * rng.normal(size=50), "c": np.zeros(50)}
    tasks, coor = correlation_matrix(y)
    assert coor[0, 2] == coor[1, 2] == coor[2, 0] == 0.0 and coor[0, 1] > 0.9
    assert constant_tasks(y) == ["c"]
    # (a, b) opens a pool near 1; (a, c) at 0 opens its own; (b, c) at 0 joins it
    assert shared_pools(tasks, coor, 0.1) == [["a", "b"], ["a", "b", "c"]]


def test_a_target_zero_in_every_row_warns_and_pbfs_runs(tmp_path, capsys):
    head, *rows = _rows(1000, 0)
    train = _table(tmp_path, [head] + [",".join(f[:2] + ["0", f[3]]) for f in (r.split(",") for r in rows)])
    rc, err, text = _table_run(capsys, tmp_path, train, PBFS)
    assert rc == 0, err
    warned = text.index("pbfs: task 'y_1' has constant train labels: its label correlations are taken as 0")
    assert text.index("task 'y_1': train has one class only") < warned  # said when the data are read
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["systems"]["pbfs"]["tasks"]["z"]["test"] >= 0


@pytest.mark.parametrize("own_splits", [False, True])
def test_a_one_row_train_table_is_one_line_before_training(tmp_path, capsys, own_splits):
    train = _table(tmp_path, _rows(1, 0))
    splits = {"dev": _table(tmp_path, _rows(20, 1), "d.csv"), "test": _table(tmp_path, _rows(20, 2), "e.csv")}
    rc, err, _ = _table_run(capsys, tmp_path, train, PBFS, **(splits if own_splits else {}))
    why = (
        "1 training row(s): training needs at least 2"
        if own_splits
        else "1 data row(s) are too few to carve dev and test from (rows: train 1, dev 0, test 0)"
    )
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"sparseshare: error: {train}: {why}"), err
    assert not (tmp_path / "run" / "systems").exists()


def test_a_table_without_targets_names_only_the_targets_key(tmp_path, capsys):
    train = _table(tmp_path, _rows(20, 0))
    sets = ["data.dataset=table", f"data.table={{train: {train}}}", "data.tasks=null", "systems=[single]"]
    rc, err = _run(
        capsys, ["run", "smoke", "--out", tmp_path / "run", *(a for s in sets for a in ("--set", s))]
    )
    assert rc == 2 and len(err) == 1 and err[0].endswith("'data.table.targets' is required"), err
    assert not (tmp_path / "run").exists()


def test_a_column_too_large_to_standardize_is_named_before_training(tmp_path, capsys):
    rows = _rows(100, 0)
    rows = [rows[0]] + [f"{'-' if i % 2 else ''}1e308,{r.split(',', 1)[1]}" for i, r in enumerate(rows[1:])]
    train = _table(tmp_path, rows)
    rc, err, _ = _table_run(capsys, tmp_path, train, PBFS)
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (
        f"sparseshare: error: {train}: column 'a': values up to 1e+308 overflow its mean and standard "
        "deviation; rescale the column (divide it by a power of ten) or exclude it"
    )
    assert not (tmp_path / "run" / "systems").exists()


def test_a_value_too_far_from_the_train_mean_names_its_split_file(tmp_path):
    train = _table(tmp_path, _rows(30, 0))
    dev = _table(tmp_path, _rows(10, 1)[:-1] + ["1e300,0.5,1,0.2"], "dev.csv")
    test = _table(tmp_path, _rows(10, 2), "test.csv")
    with pytest.raises(DataError) as e:
        read_table(train, {"y/1": "binary", "z": "regression"}, dev=dev, test=test)
    assert str(e.value) == (
        f"{dev}: column 'a': values too far from the train mean (in dev) to standardize in float32; "
        "rescale the column or exclude it"
    )


def test_tasks_that_share_no_labelled_row_ask_for_explicit_pools(tmp_path, capsys):
    head, *rows = _rows(60, 0)
    # y/1 labelled in the first half only, z in the second: their correlation is undefined
    fields = [r.split(",") for r in rows]
    half = [",".join(f[:2] + ([f[2], ""] if i < 30 else ["", f[3]])) for i, f in enumerate(fields)]
    train = _table(tmp_path, [head] + half)
    rc, err, _ = _table_run(capsys, tmp_path, train, PBFS)
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (
        "sparseshare: error: 'pbfs.pools': Algorithm 1 cannot pool these tasks (correlation undefined for "
        "every pair of ['y_1', 'z']: no task shares rows with another): name the pools"
    )
