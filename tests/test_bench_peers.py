"""bench/peers.py with no peer needed: sparseshare's side of the tabular and CRF parts, the step clock's
arithmetic, the Goal 2 verdict and the report's format, on a small synthetic table (no census, no network)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sparseshare.data.tabular import TabularData

BENCH = Path(__file__).resolve().parents[1] / "bench" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["bench_peers"]


def table(n: int = 1600, seed: int = 0) -> TabularData:
    """Two binary tasks named as the census ones, each carried by its own column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = {"income": (x[:, 0] + 0.3 * rng.normal(size=n) > 1.0), "marital": (x[:, 1] > 0)}
    cut = {"train": slice(0, 1000), "dev": slice(1000, 1300), "test": slice(1300, n)}
    splits = {s: (x[c], {t: v[c].astype(np.float32) for t, v in y.items()}) for s, c in cut.items()}
    return TabularData.from_arrays(splits, {"income": "binary", "marital": "binary"})


def test_step_clock_times_steps_within_epochs(peers):
    clock = peers.StepClock()
    clock.times = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0]  # 5 rows, batch 2: 3 steps an epoch, 2 epochs
    clock.walls = [0.0, 2.0, 4.0, 6.0, 20.0, 22.0]
    cpu, wall, step_ms = clock.summary(5, 2, 2)
    # timed: steps 2, 3 of epoch 1 (2 + 1 rows in 2 s), steps 2, 3 of epoch 2 (2 + 1 rows in 8 s);
    # 3 -> 10 crosses the epoch boundary (dev evaluation) and is left out
    assert cpu == pytest.approx(6 / 10) and wall == pytest.approx(6 / 20)
    assert step_ms == pytest.approx(1000.0)
    with pytest.raises(RuntimeError, match="expected 6 optimizer steps, saw 5"):
        clock.times.pop()
        clock.summary(5, 2, 2)


def test_step_clock_hooks_every_optimizer_while_entered(peers):
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    with peers.StepClock() as clock:
        for _ in range(4):
            w.sum().backward()
            opt.step()
    opt.step()  # after the block: not counted
    assert len(clock.times) == len(clock.walls) == 4
    assert clock.times == sorted(clock.times) and clock.walls == sorted(clock.walls)


def test_tabular_part_runs_sparseshare_alone(peers):
    data = table()
    test = peers.Arrays.of(data, "test")
    assert test.x.shape == (300, 6) and test.y.shape == (300, 2)
    said = []
    budget = peers.Budget(epochs=2, batch_size=100)
    res = peers.tabular_part([peers.Sparseshare(data, test)], peers.MODELS, [1, 2], budget, said.append)
    assert len(said) == 6 and res.frameworks == ["sparseshare"]
    for model in peers.MODELS:
        runs = res.runs[(model, "sparseshare")]
        assert len(runs) == 2
        for r in runs:
            assert r.rows_per_s > 0 and r.wall_rows_per_s > 0 and r.step_ms > 0 and r.bare_ms > 0
            assert set(r.auc) == {"income", "marital"}
            assert all(0.0 <= a <= 1.0 for a in r.auc.values())
    lines = peers.tabular_table(res)
    assert lines[0].startswith(
        "| model | framework | rows/s (range) | wall-clock rows/s | step ms | model step ms | loop adds ms |"
    )
    assert len(lines) == 2 + len(peers.MODELS)
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)
    assert peers.goal_line(res) is None  # no torch-rechub: no verdict


def run(rate: float):
    return lambda peers: peers.Run(rate, rate / 2, 1.0, 0.5, {"income": 0.9, "marital": 0.95})


@pytest.mark.parametrize(
    ("ours", "theirs", "verdict"),
    [(300.0, 100.0, "3.00x (wall clock 3.00x), met"), (200.0, 100.0, "2.00x (wall clock 2.00x), not met")],
)
def test_goal_line_says_whether_mmoe_rows_per_s_is_3x(peers, ours, theirs, verdict):
    res = peers.TabularResult(frameworks=["sparseshare", "torch-rechub"])
    res.runs[("mmoe", "sparseshare")] = [run(ours)(peers), run(ours * 2)(peers), run(ours)(peers)]
    res.runs[("mmoe", "torch-rechub")] = [run(theirs)(peers), run(theirs * 2)(peers), run(theirs)(peers)]
    assert peers.goal_line(res).endswith(verdict)
    assert "| mmoe | torch-rechub |" in "\n".join(peers.tabular_table(res))
    ours_line, theirs_line = peers.summary_lines(res)
    assert ours_line == "- sparseshare: its loop adds 0.50 ms a step to the bare model step"
    assert theirs_line.startswith("- torch-rechub: its loop adds 0.50 ms a step to the bare model step; ")
    assert (
        f"sparseshare trains {ours / theirs:.2f}x its rows/s, at a test AUC +0.0000 from its" in theirs_line
    )


def test_crf_part_and_report_without_pytorch_crf(peers):
    crf = peers.crf_part(5, batch=4, max_len=8, calls=2, peer=False)
    assert list(crf.ms) == ["sparseshare"] and crf.ms["sparseshare"]["loss"] > 0
    assert math.isnan(crf.ll_diff) and crf.sentences == 0
    data = table()
    res = peers.tabular_part(
        [peers.Sparseshare(data, peers.Arrays.of(data, "test"))], ["mmoe"], [1], peers.Budget(1, 200), print
    )
    notes = ["torch-rechub is not installed: left out"]
    text = peers.report(
        "python bench/peers.py --rows 1000", peers.Budget(1, 200), res, [crf], notes, [1], 1000, 6
    )
    assert "Command: `python bench/peers.py --rows 1000`" in text
    assert "- torch-rechub is not installed: left out" in text
    assert "- budget: 1 epoch(s) over 1,000 census train rows, batch 200" in text
    assert "its 6 encoded columns" in text
    assert "## Tabular" in text and "| mmoe | sparseshare |" in text
    assert "## CRF" in text and "| 5 | 4 | sparseshare |" in text
    assert "Goal 2" not in text
    for ln in text.splitlines():  # every table row has its header's cells
        if ln.startswith("| model") or ln.startswith("| tags"):
            width = ln.count("|")
        elif ln.startswith("|"):
            assert ln.count("|") == width, ln


def test_crf_part_agrees_with_pytorch_crf_where_installed(peers):
    pytest.importorskip("torchcrf")
    crf = peers.crf_part(6, batch=8, max_len=12, calls=1, draws=3)
    assert list(crf.ms) == ["sparseshare", "pytorch-crf"]
    assert crf.ll_diff < 1e-4 and crf.grad_diff < 1e-6
    assert crf.paths_equal == crf.sentences == 24
