"""A training loss that is no longer a number ends training in one line (issue 22, item 6): before, a run with
NaN losses went on selecting among NaN weights and exited 0."""

from __future__ import annotations

import pytest
import torch

import sparseshare as ss
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks


def test_a_nan_training_loss_is_one_line_naming_the_epoch_and_the_way_out(tmp_path):
    model = TwoTaskMLP()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ss.TrainingError) as e:
        ss.train_jointly(
            model, _tasks(), SETTINGS.replace(epochs=3), directory=tmp_path / "t", progress=False
        )
    line = str(e.value)
    assert "\n" not in line and "epoch 1: the mean training loss is nan: training diverged" in line, line
    assert f"lower train.lr (now {SETTINGS.lr:g})" in line, line
    assert not list((tmp_path / "t").glob("*.safetensors")), "a diverged epoch was kept"


def test_a_learning_rate_that_blows_the_weights_up_is_caught_within_the_run():
    settings = SETTINGS.replace(lr=1e30, clip=None, epochs=5)
    with pytest.raises(ss.TrainingError, match="training diverged"):
        ss.train_jointly(TwoTaskMLP(), _tasks(), settings, progress=False)
