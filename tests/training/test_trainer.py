from collections import Counter

import pytest
import torch

from sparseshare.data.sequence import SequenceData, build_shared_vocabs
from sparseshare.data.task import Task
from sparseshare.errors import ConfigError
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing import HardSharing, SparseSharing
from sparseshare.training import trainer as trainer_mod
from sparseshare.training.samplers import get_sampler
from sparseshare.training.trainer import TrainSettings, train
from tests.helpers import DEVICES, ToyData, random_masks, toy_tagger

TASKS = ("pos", "ner")


def _specs():
    return {t: Task(t, ToyData(i, sizes=(40 + 40 * i, 16, 16)), "accuracy") for i, t in enumerate(TASKS)}


def test_training_learns_the_toy_task():
    specs = _specs()
    mech = HardSharing(toy_tagger(tasks=TASKS, hidden=16))
    res = train(mech, specs, TrainSettings(epochs=12, patience=0, batch_size=8, lr=0.5), seed=0, device="cpu")
    assert res.epochs_run == 12
    assert res.history[res.best_epoch]["dev_mean"] > res.history[0]["dev_mean"]
    assert res.best_dev["pos"]["accuracy"] > 0.5  # 5 tags: chance is 0.2


def test_bucket_needs_data_that_has_length_buckets_and_a_valid_value():
    specs = _specs()  # ToyData.batches takes no bucket
    with pytest.raises(ConfigError, match=r"^'train.bucket': the data of 'pos' \(ToyData\) has no length"):
        train(HardSharing(toy_tagger(tasks=TASKS)), specs, TrainSettings(bucket=4), seed=0, device="cpu")
    with pytest.raises(ConfigError, match=r"'train.bucket' must be >= 0, got -1"):
        TrainSettings(bucket=-1).check()


def test_training_with_length_buckets_on_sequence_data():
    g = torch.Generator().manual_seed(0)
    raw = {
        split: [
            ([f"w{(i * 7 + j) % 11}" for j in range(n)], [f"T{(i + j) % 3}" for j in range(n)])
            for i, n in enumerate(torch.randint(1, 20, (k,), generator=g).tolist())
        ]
        for split, k in (("train", 60), ("dev", 10), ("test", 10))
    }
    words, chars = build_shared_vocabs([raw["train"]])
    data = SequenceData("pos", raw, words, chars)
    model = build_tagger(len(words), len(chars), {"pos": len(data.tag_vocab)}, word_dim=8, hidden=8)
    res = train(
        SparseSharing(model, random_masks(model, ["pos"], 0.5)),
        [Task("pos", data, "accuracy")],
        TrainSettings(epochs=2, patience=0, bucket=3),
        seed=0,
        device="cpu",
    )
    assert res.epochs_run == 2 and 0 <= res.best_dev["pos"]["accuracy"] <= 1


def test_early_stopping_stops_after_patience(monkeypatch):
    scores = [0.5, 0.6, 0.55, 0.58, 0.59, 0.9, 0.9]
    calls = []

    def fake(*a, **k):  # one call per task per epoch; both tasks score the epoch's value
        calls.append(1)
        return {"accuracy": scores[(len(calls) - 1) // len(TASKS)]}

    monkeypatch.setattr(trainer_mod, "evaluate_task", fake)
    res = train(
        HardSharing(toy_tagger(tasks=TASKS)),
        _specs(),
        TrainSettings(epochs=7, patience=3),
        seed=0,
        device="cpu",
    )
    assert res.epochs_run == 5 and res.best_epoch == 1


class _Killed(Exception):
    pass


@pytest.mark.parametrize("device", DEVICES)
def test_killed_training_resumes_identically(tmp_path, monkeypatch, device):
    torch.backends.cudnn.deterministic = True
    settings = TrainSettings(epochs=5, patience=0, batch_size=8, lr=0.3, momentum=0.9)

    def mech():
        m = toy_tagger(tasks=TASKS, dropout=0.2)
        return SparseSharing(m, random_masks(m, TASKS, 0.6))

    ref = mech()
    ref_res = train(ref, _specs(), settings, seed=5, device=device, directory=tmp_path / "a")
    real, calls = trainer_mod.evaluate_task, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2 * 3 + 1:  # during epoch 4's dev evaluation
            raise _Killed
        return real(*a, **k)

    (tmp_path / "b").mkdir()
    monkeypatch.setattr(trainer_mod, "evaluate_task", dying)
    with pytest.raises(_Killed):
        train(mech(), _specs(), settings, seed=5, device=device, directory=tmp_path / "b")
    monkeypatch.setattr(trainer_mod, "evaluate_task", real)
    resumed = mech()
    res = train(resumed, _specs(), settings, seed=5, device=device, directory=tmp_path / "b")
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref_res.history]
    for (n, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("name", ["proportional", "uniform", "round_robin"])
def test_samplers(name):
    sizes = {"a": 100, "b": 300}
    order = get_sampler(name)(sizes, 4000, torch.Generator().manual_seed(0))
    c = Counter(order)
    assert len(order) == 4000 and set(c) == {"a", "b"}
    if name == "proportional":
        assert abs(c["b"] / 4000 - 0.75) < 0.03
    elif name == "uniform":
        assert abs(c["b"] / 4000 - 0.5) < 0.03
    else:
        assert order[:4] == ["a", "b", "a", "b"]
    with pytest.raises(Exception, match="valid"):
        get_sampler("greedy")
