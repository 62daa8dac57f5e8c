"""Tabular metrics and the evaluator the trainer calls; a short training run through the trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparseshare.data.synthetic import synthetic_data
from sparseshare.data.task import Task
from sparseshare.metrics import LOWER_IS_BETTER, PRIMARY, score
from sparseshare.sharing.mmoe import mmoe
from sparseshare.training.evaluation import evaluate_task
from sparseshare.training.trainer import TrainSettings, train


def test_binary_metrics():
    y = np.array([1, 0, 1, 0, 1, np.nan])
    p = np.array([0.9, 0.2, 0.4, 0.6, 0.7, 0.99])
    s = score("binary", y, p)
    assert s["accuracy"] == pytest.approx(3 / 5)  # 0.4 -> 0 and 0.6 -> 1 are wrong; NaN row skipped
    assert s["f1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert s["f1_macro"] == pytest.approx((2 / 3 + 1 / 2) / 2)  # class 0: 1 TP, 1 FP, 1 FN -> 0.5
    assert s["auc"] == pytest.approx(5 / 6)  # pairs (pos, neg) ranked right: 5 of 6
    assert math.isnan(score("binary", np.ones(3), np.ones(3) / 2)["auc"])


def test_regression_metrics_and_directions():
    s = score("regression", np.array([1.0, 2.0, np.nan]), np.array([2.0, 0.0, 5.0]))
    assert s == {"mse": pytest.approx(2.5), "mae": pytest.approx(1.5)}
    assert PRIMARY == {"binary": "auc", "regression": "mse"} and "mse" in LOWER_IS_BETTER
    with pytest.raises(ValueError):
        score("ranking", np.ones(2), np.ones(2))


def test_trainer_runs_tabular_tasks_with_the_evaluator():
    data = synthetic_data(0.8, sizes=(400, 100, 100), seed=0, dim=8)
    torch.manual_seed(0)
    mech = mmoe(data.in_dim, data.kinds, num_experts=4, expert_hidden=(16,), tower=(8,))
    before = {t: evaluate_task(mech, Task(t, data, "mse"), "dev", 64, "cpu")["mse"] for t in data.tasks}
    specs = {t: Task(t, data, "mse") for t in data.tasks}
    settings = TrainSettings(epochs=4, patience=0, batch_size=32, optimizer="adam", lr=0.01, clip=None)
    result = train(mech, specs, settings, seed=0, device="cpu")
    assert result.epochs_run == 4
    for t in data.tasks:
        assert set(result.best_dev[t]) == {"mse", "mae"}
        assert result.best_dev[t]["mse"] < 0.7 * before[t]


def test_delta_m_on_a_hand_made_table():
    from sparseshare.experiments.results.report import primary_table
    from sparseshare.metrics import delta_m

    metrics = {"income": "auc", "age": "mse"}
    single = {"income": 0.80, "age": 2.0}
    better = {"income": 0.88, "age": 1.5}  # +10% AUC, MSE down 25%: both better
    assert delta_m(better, single, metrics) == pytest.approx(100 * (0.10 + 0.25) / 2)
    worse = {"income": 0.72, "age": 2.5}
    assert delta_m(worse, single, metrics) == pytest.approx(100 * (-0.10 - 0.25) / 2)
    assert math.isnan(delta_m(better, {"income": 0.0, "age": 2.0}, metrics))

    def system(scores):
        return {"params": 1000, "tasks": {t: {"metric": m, "test": scores[t], "dev": scores[t]}
                                          for t, m in metrics.items()}}  # fmt: skip

    table = primary_table({"systems": {"single": system(single), "pbfs": system(better)}})
    assert table.splitlines()[0].endswith("| Δm% | # Params |")
    assert "| +17.50 | 1k |" in table.splitlines()[3] and "| - | 1k |" in table.splitlines()[2]


def test_span_f1_is_strict_and_lenient_as_conlleval():
    from sparseshare.metrics import span_f1

    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    # a lone I-PER opens a span for conlleval (lenient) but is ill-formed BIO2 (strict drops it)
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]
    out = span_f1(gold, pred, "bio2")
    assert (out["precision"], out["recall"]) == (1.0, 0.5)  # strict: only LOC predicted, and right
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["f1_lenient"] == 1.0  # conlleval reads I-PER I-PER as the PER span
    assert out["precision_lenient"] == out["recall_lenient"] == 1.0
