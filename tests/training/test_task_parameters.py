"""Which parameters a task uses is found, not guessed (issue 21, item 2): a model without
``task_parameter_names`` whose heads are ``classifier.*`` and with a layer only one task uses."""

from __future__ import annotations

import logging

import torch
from torch import nn

import sparseshare as ss
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks


class Classifier(nn.Module):
    """Heads named ``classifier.*``, a layer (``big_only``) that only task ``big`` uses, and a layer no
    task uses; no ``task_parameter_names``."""

    tasks = ["even", "big"]

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.tok = nn.Embedding(10, 8)
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.big_only = nn.Linear(16, 16)
        self.unused = nn.Linear(16, 16)
        self.classifier = nn.ModuleDict({t: nn.Linear(16, 2) for t in self.tasks})

    def forward(self, batch, task):
        h = self.encoder(self.tok(batch[0]))
        if task == "big":
            h = torch.relu(self.big_only(h))
        return self.classifier[task](h)

    def task_loss(self, output, batch, task):
        return nn.functional.cross_entropy(output, batch[1])


SHARED = ["encoder.0.weight", "encoder.2.weight"]


def test_the_search_masks_what_every_task_reaches_and_export_keeps_a_tasks_own(tmp_path, caplog):
    model = Classifier()
    with caplog.at_level(logging.INFO, logger="sparseshare"):
        state = ss.warmup(model, _tasks(), SETTINGS, epochs=1)
    lines = [r.getMessage() for r in caplog.records if "task parameters (found" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "every task reaches 5 of 13" in lines[0] and "big_only.weight (big)" in lines[0]
    assert "classifier.even.weight (even)" in lines[0] and "none: unused.weight" in lines[0]
    search = ss.SearchSettings(alpha=0.5, min_density=0.4, epochs_per_level=1, patience=0)
    found = ss.search_masks(model, _tasks(), state, search=search, settings=SETTINGS)
    masks = ss.select_subnets(found)
    assert sorted(masks["even"]) == SHARED and sorted(masks["big"]) == SHARED  # no head, no big_only
    mech = ss.SparseSharing(model, masks)
    names = mech.task_parameter_names("even")
    assert "model.classifier.even.weight" in names and "model.big_only.weight" not in names
    assert "model.classifier.big.weight" not in names and "model.unused.weight" not in names
    assert "model.big_only.weight" in mech.task_parameter_names("big")
    ss.train_jointly(mech, _tasks(), SETTINGS.replace(epochs=1))
    exported = ss.export_subnet(mech, "even", tmp_path / "even.safetensors")
    params = dict(model.named_parameters())
    own = ["tok.weight", *SHARED, "encoder.0.bias", "encoder.2.bias", "classifier.even.weight",
           "classifier.even.bias"]  # fmt: skip
    assert exported["dense_parameter_bytes"] == sum(params[n].numel() * params[n].element_size() for n in own)


def test_a_models_own_task_parameter_names_win(caplog):
    model = TwoTaskMLP()
    with caplog.at_level(logging.INFO, logger="sparseshare"):
        ss.warmup(model, _tasks(), SETTINGS, epochs=1)
    assert not any("task parameters (found" in r.getMessage() for r in caplog.records)
    assert not hasattr(model, "found_task_parameters")


def test_finding_them_leaves_training_unchanged():
    """The forward and backward per task consume no random numbers and update nothing: a model trained
    after them trains as one whose names are given."""

    class Named(Classifier):
        def task_parameter_names(self, task):
            return [n for n, _ in self.named_parameters()]

    found, named = Classifier(), Named()
    a = ss.train_jointly(found, _tasks(), SETTINGS.replace(epochs=2))
    b = ss.train_jointly(named, _tasks(), SETTINGS.replace(epochs=2))
    assert hasattr(found, "found_task_parameters") and a.history == b.history
    assert all(torch.equal(p, q) for p, q in zip(found.parameters(), named.parameters()))
