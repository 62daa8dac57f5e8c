"""The public pipeline over a user's own model and plain DataLoaders: contracts, tasks, units."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparseshare as ss


class TwoTaskMLP(nn.Module):
    """A user's model: an embedding, a shared encoder and a head per task; batches are (x, y) tuples."""

    tasks = ["even", "big"]

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.tok = nn.Embedding(10, 8)
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.heads = nn.ModuleDict({t: nn.Linear(16, 2) for t in self.tasks})

    def forward(self, batch, task):
        x, _ = batch
        return self.heads[task](self.encoder(self.tok(x)))

    def task_loss(self, output, batch, task):
        return nn.functional.cross_entropy(output, batch[1])

    def task_parameter_names(self, task):
        return [
            n
            for n, _ in self.named_parameters()
            if not n.startswith("heads.") or n.startswith(f"heads.{task}.")
        ]


def _loaders(rule, seed: int, sizes=(200, 60, 60)):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for split, n in zip(("train", "dev", "test"), sizes):
        x = torch.randint(0, 10, (n,), generator=g)
        out[split] = DataLoader(TensorDataset(x, rule(x)), batch_size=16, shuffle=split == "train")
    return out


def _tasks():
    return [
        ss.Task.from_loaders("even", **_loaders(lambda x: (x % 2 == 0).long(), 1), metric="accuracy"),
        ss.Task.from_loaders("big", **_loaders(lambda x: (x >= 5).long(), 2), metric="accuracy"),
    ]


SETTINGS = ss.TrainSettings(epochs=4, patience=0, batch_size=16, lr=0.2, lr_decay=0.0)


def test_the_whole_pipeline_on_plain_dataloaders(tmp_path):
    model, tasks = TwoTaskMLP(), _tasks()
    names = ss.prunable_names(model)
    assert names == ["encoder.0.weight", "encoder.2.weight"]  # not the embedding (by type), not the heads
    state = ss.warmup(model, tasks, SETTINGS, epochs=2, seed=1)
    assert not torch.equal(
        state["encoder.0.weight"], model.state_dict()["encoder.0.weight"]
    )  # a copy trained
    search = ss.SearchSettings(epochs_per_level=1, patience=1, alpha=0.5, min_density=0.2)
    found = ss.search_masks(model, tasks, state, search=search, settings=SETTINGS, seed=3)
    again = ss.search_masks(model, tasks, state, search=search, settings=SETTINGS, seed=3, directory=tmp_path)
    for t in found:  # in memory or on disk: the same levels and masks
        assert [lv.__dict__ for lv in found[t].levels] == [lv.__dict__ for lv in again[t].levels]
        assert all(torch.equal(a[n], b[n]) for a, b in zip(found[t].masks, again[t].masks) for n in a)
        assert (tmp_path / f"{t}.jsonl").exists() and found[t].levels[-1].density <= 0.2
    masks = ss.select_subnets(found, force_density={"big": 0.5})
    assert ss.density(masks["big"]) == pytest.approx(0.5, abs=0.01)
    model.load_state_dict(state)
    mech = ss.SparseSharing(model, masks)
    result = ss.train_jointly(mech, tasks, SETTINGS, seed=0)
    scores = ss.evaluate(mech, tasks, "test")
    assert result.epochs_run == 4 and set(scores) == {"even", "big"}
    assert all(s["accuracy"] > 0.8 for s in scores.values())  # chance is about 0.5
    with pytest.raises(ss.ConfigError, match=r"'search.force_density': unknown task\(s\) \['pos'\]"):
        ss.select_subnets(found, force_density={"pos": 0.3})


def test_datasets_are_batched_with_the_settings_and_metrics_may_be_callables():
    loaders = _loaders(lambda x: (x % 2 == 0).long(), 1)
    data = ss.LoaderData(**{s: dl.dataset for s, dl in loaders.items()})
    assert data.num_examples("train") == 200 and data.num_batches("train", 32) == 7

    def balanced(pred, target):
        hit = pred.argmax(-1) == target
        return {"balanced": 0.5 * (hit[target == 0].float().mean() + hit[target == 1].float().mean()).item()}

    task = ss.Task("even", data, balanced, metric_name="balanced")
    other = ss.Task.from_loaders("big", **_loaders(lambda x: (x >= 5).long(), 2))
    res = ss.train_jointly(TwoTaskMLP(), [task, other], SETTINGS.replace(batch_size=32), seed=0)
    assert task.key == "balanced" and 0.8 < res.best_dev["even"]["balanced"] <= 1.0


def test_joint_training_over_separate_task_data_takes_every_task_each_step():
    calls = []
    model = TwoTaskMLP()
    real = model.task_loss
    model.task_loss = lambda out, batch, task: calls.append(task) or real(out, batch, task)
    ss.train_jointly(
        model, _tasks(), SETTINGS.replace(epochs=1, joint=True, loss_weights={"big": 2.0}), seed=0
    )
    assert calls[:4] == ["even", "big", "even", "big"]  # both tasks every step: 13 steps (200 / 16)
    assert calls.count("even") == calls.count("big") == 13
    with pytest.raises(ss.ConfigError, match=r"'train.loss_weights': unknown task\(s\) \['pos'\]"):
        ss.train_jointly(model, _tasks(), SETTINGS.replace(joint=True, loss_weights={"pos": 1.0}))


class NoLoss(nn.Module):
    tasks = ["a", "b"]

    def forward(self, batch, task):
        return batch


@pytest.mark.parametrize(
    "call",
    [
        lambda: ss.HardSharing(NoLoss()),
        lambda: ss.SparseSharing(NoLoss()),
        lambda: ss.train_jointly(NoLoss(), _tasks()),
        lambda: ss.warmup(NoLoss(), _tasks(), epochs=1),
    ],
)
def test_a_model_lacking_a_method_fails_at_once_in_one_line(call):
    with pytest.raises(ss.ContractError) as e:
        call()
    msg = str(e.value)
    assert msg == (
        "NoLoss does not fit the model contract: it lacks `task_loss(output, batch, task) -> scalar loss` "
        "(see sparseshare.MultiTaskModel)"
    )


def test_task_data_lacking_a_method_and_batches_without_targets_fail_in_one_line():
    class NoCount:
        def batches(self, split, batch_size, shuffle=False, generator=None):
            return iter([])

    with pytest.raises(
        ss.ContractError, match=r"task 'a': NoCount does not fit .* lacks `num_examples\(split\)`"
    ):
        ss.Task("a", NoCount())
    loaders = {s: DataLoader(TensorDataset(torch.zeros(4)), batch_size=2) for s in ("train", "dev")}
    task = ss.Task.from_loaders("even", **loaders)
    with pytest.raises(
        ss.ContractError, match="cannot find the targets .* give Task\\(target=lambda batch: ...\\)"
    ):
        task.targets(next(iter(loaders["dev"])))
    with pytest.raises(ss.ConfigError, match="unknown metric 'acc'"):
        ss.Task.from_loaders("even", **loaders, metric="acc")
