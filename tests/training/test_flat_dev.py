"""A task that never learns says so (issue 21, item 9): its dev score unchanged over a training run or
over the IMP levels is one warning naming the task and what selection then did."""

from __future__ import annotations

import logging

import torch

import sparseshare as ss
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks


def _stuck() -> TwoTaskMLP:
    """Task 'big' predicts class 0 whatever its input (a zero head), and nothing trains (lr 0)."""
    model = TwoTaskMLP()
    with torch.no_grad():
        model.heads["big"].weight.zero_()
        model.heads["big"].bias.zero_()
    return model


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_flat_dev_score_over_training_and_over_the_levels_is_one_warning_each(caplog):
    settings = SETTINGS.replace(lr=0.0, epochs=3)
    with caplog.at_level(logging.WARNING, logger="sparseshare"):
        ss.train_jointly(_stuck(), _tasks(), settings, progress=False)
    flat = [w for w in _warnings(caplog) if "at every one of 3 epochs: it did not change" in w]
    assert len(flat) == 2 and any("task 'big'" in w for w in flat), _warnings(caplog)  # lr 0: both
    caplog.clear()
    search = ss.SearchSettings(alpha=0.5, min_density=0.4, epochs_per_level=1, patience=0)
    model = _stuck()
    found = ss.search_masks(model, _tasks(), None, search=search, settings=settings, progress=False)
    with caplog.at_level(logging.WARNING, logger="sparseshare"):
        masks = ss.select_subnets(found)
    lines = [w for w in _warnings(caplog) if w.startswith("IMP big:")]
    assert len(lines) == 1 and "at every one of its 3 levels" in lines[0], _warnings(caplog)
    assert "the tie rule picked the sparsest level, 2 (density 0.250)" in lines[0]
    assert ss.density(masks["big"]) == 0.25


def test_a_task_that_learns_is_not_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="sparseshare"):
        ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS, progress=False)
    assert not [w for w in _warnings(caplog) if "did not change" in w]
