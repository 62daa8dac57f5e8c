"""Metrics check what they get (issue 21, item 3): binary metrics take 1 logit, 2 logits or probabilities
per example; every other input that does not fit fails in one line naming what was given and needed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparseshare as ss
from sparseshare.metrics import accuracy, get_metric, score, span_f1, token_accuracy

G = torch.Generator().manual_seed(0)
LOGITS = torch.randn(64, 2, generator=G)
Y = torch.randint(0, 2, (64,), generator=G)
TAGS = ["O", "B-PER", "I-PER"]


@pytest.mark.parametrize("name", ["auc", "f1", "f1_macro"])
def test_a_two_logit_head_scores_as_class_1_softmax_probability_and_the_logit_difference(name):
    metric = get_metric(name)
    two = metric(LOGITS, Y)
    assert two == metric(torch.softmax(LOGITS, -1)[:, 1], Y)  # probabilities: all four values
    assert two == metric((LOGITS[:, 1] - LOGITS[:, 0])[:, None], Y)  # one logit per example, [N, 1]
    assert 0 < two["auc"] < 1 and set(two) == {"auc", "f1", "f1_macro", "accuracy"}
    y = Y.float().clone()
    y[:5] = math.nan  # unlabelled rows are skipped, whatever their predictions
    z = LOGITS.clone()
    z[:5] = math.nan
    assert metric(z, y) == metric(LOGITS[5:], Y[5:])


def test_a_column_of_logits_is_thresholded_at_0_its_auc_unchanged():
    y = np.array([0, 1, 1, 0])
    logits = np.array([-2.0, 0.3, 1.5, -0.2])  # 0.3 is class 1 (sigmoid 0.57), not below a 0.5 threshold
    s = score("binary", y, logits)
    assert s == score("binary", y, 1 / (1 + np.exp(-logits)))
    assert s["accuracy"] == 1.0 and s["auc"] == 1.0
    assert accuracy(torch.tensor(logits), torch.tensor(y, dtype=torch.float32))["accuracy"] == 1.0


def test_evaluate_scores_auc_on_the_readmes_two_output_head():
    class TwoHeads(nn.Module):  # the README's pattern: a classifier head with 2 outputs per example
        tasks = ["size"]

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = nn.Embedding(10, 8)
            self.heads = nn.ModuleDict({"size": nn.Linear(8, 2)})

        def forward(self, batch, task):
            return self.heads[task](self.embed(batch[0]))

        def task_loss(self, output, batch, task):
            return nn.functional.cross_entropy(output, batch[1])

    x = torch.arange(40) % 10
    loader = DataLoader(TensorDataset(x, (x > 4).long()), batch_size=16)
    model = TwoHeads()
    task = ss.Task.from_loaders("size", train=loader, dev=loader, metric="auc")
    got = ss.evaluate(model, [task], "dev", device="cpu")["size"]
    with torch.no_grad():
        p = torch.softmax(model((x,), "size"), -1)[:, 1]
    assert got == pytest.approx(score("binary", (x > 4).numpy(), p.numpy()))


def _f1(pred, target):
    return get_metric("f1", scheme="bio2", labels=TAGS)(pred, target)


BAD = {  # what is given -> (the call, what the message names as given, what it names as needed)
    "3 logits for auc": (lambda: get_metric("auc")(torch.randn(64, 3), Y), "shape [64, 3]", "2 logits"),
    "shorter predictions": (
        lambda: get_metric("auc")(LOGITS[:60], Y),
        "shape [60, 2]",
        "one prediction per target",
    ),
    "targets not 0/1": (lambda: get_metric("f1")(LOGITS, Y + 1), "got values 1, 2", "must be 0 or 1"),
    "NaN predictions": (
        lambda: get_metric("auc")(torch.full((64,), math.nan), Y),
        "NaN or infinite values in 64 of 64",
        "need finite predictions",
    ),
    "no example": (
        lambda: get_metric("auc")(torch.zeros(0, 2), torch.zeros(0)),
        "shape [0, 2]",
        "at least one example",
    ),
    "text for auc": (lambda: score("binary", Y.numpy(), ["a"] * 64), "a list of 64", "1 logit per example"),
    "2 columns for mse": (
        lambda: get_metric("mse")(torch.randn(64, 2), Y.float()),
        "shape [64, 2]",
        "one value per example",
    ),
    "2-d targets": (
        lambda: score("regression", np.zeros((4, 2)), np.zeros(4)),
        "targets of shape [4, 2]",
        "one target per example",
    ),
    "accuracy, other lengths": (
        lambda: accuracy(torch.randn(64, 3), Y[:60]),
        "shape [64, 3] (float32) for targets of shape [60] (int64)",
        "one more dimension (scores per class)",
    ),
    "accuracy, NaN scores": (
        lambda: get_metric("accuracy")(torch.full((64, 2), math.nan), Y),
        "NaN or infinite values",
        "finite scores per class",
    ),
    "accuracy, class beyond the scores": (
        lambda: accuracy(LOGITS, Y + 2),
        "targets hold class 3",
        "a score per class",
    ),
    "accuracy, binary floats, targets 0/2": (
        lambda: accuracy(torch.rand(64), Y.float() * 2),
        "got values 0, 2",
        "targets 0 or 1",
    ),
    "accuracy, no example": (lambda: accuracy([], []), "shape [0]", "at least one example"),
    "token accuracy, other lengths": (
        lambda: token_accuracy([[1, 2], [0]], [[1, 2], [0, 0]]),
        "sentence 1 has 1 gold tags but 2 predicted",
        "one predicted tag per gold token",
    ),
    "token accuracy, fewer sentences": (
        lambda: get_metric("accuracy")([[1, 2]], [[1, 2], [0]]),
        "gold has 2 sentences, predictions 1",
        "one predicted tag sequence per gold sentence",
    ),
    "token accuracy, flat tags": (
        lambda: token_accuracy([1, 2], [[1, 2]]),
        "gold[0] is not one: got it as int 1",
        "a list of tag sequences",
    ),
    "span F1, other lengths": (
        lambda: _f1([[1, 2, 0]], [[1, 2]]),
        "sentence 0 has 2 gold tags but 3 predicted",
        "one predicted tag per gold token",
    ),
    "span F1, id beyond the labels": (
        lambda: _f1([[1, 5]], [[1, 2]]),
        "predictions sentence 0 holds tag id 5",
        "ids 0-2 (the task's 3 labels)",
    ),
    "span F1, no sentence": (lambda: span_f1([], [], "bio2"), "hold no sentence", "at least one"),
    "span F1, ids without labels": (
        lambda: span_f1([[1]], [[1]], "bio2"),
        "gold sentence 0 holds int 1",
        "takes tag strings",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_input_that_does_not_fit_fails_in_one_line_naming_what_was_given_and_needed(case):
    call, given, needed = BAD[case]
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and given in msg and needed in msg, msg
