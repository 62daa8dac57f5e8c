"""``train.fused``, ``train.compile`` and ``train.drop_last`` (issue goals 4 and 5): fused optimizers give
the unfused numbers up to rounding with masks exact; the compiled forward compiles a bounded number of
graphs over batches of many lengths (the second epoch compiles nothing) with masks exact; drop_last
leaves each task's short batch out and counts the steps accordingly.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from sparseshare.data.sequence import SequenceData, build_shared_vocabs
from sparseshare.data.tabular import TabularData
from sparseshare.data.task import Task
from sparseshare.errors import ConfigError
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing import SparseSharing
from sparseshare.training import trainer as trainer_mod
from sparseshare.training.settings import TrainSettings
from sparseshare.training.trainer import make_optimizer, train
from tests.helpers import ToyData, random_masks, toy_tagger


def _weights(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


class KeepOptimizer:
    """Patches the trainer's ``make_optimizer`` to keep what it made (its state is read afterwards)."""

    def __init__(self, monkeypatch):
        self.made = []
        real = trainer_mod.make_optimizer
        monkeypatch.setattr(
            trainer_mod, "make_optimizer", lambda *a, **k: self.made.append(real(*a, **k)) or self.made[-1]
        )


def _assert_outside_exact(mech, before, optimizer) -> None:
    """Every masked weight outside ∪_t M_t bit for bit as before training, its optimizer state zero there
    (one task: outside its M_t)."""
    params = dict(mech.model.named_parameters())
    for n in mech.names:
        outside = ~torch.stack([mech.mask(t)[n] for t in mech.tasks]).any(0)
        assert torch.equal(params[n][outside], before[n][outside]), n
        for k, v in optimizer.state.get(params[n], {}).items():
            if torch.is_tensor(v) and v.shape == outside.shape:
                assert torch.count_nonzero(v[outside]) == 0, (n, k)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fused_makes_the_fused_optimizer_and_the_default_does_not(name):
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, name, 0.1, fused=True).defaults["fused"] is True  # the CPU has one
    assert not make_optimizer(params, name, 0.1).defaults["fused"]


@pytest.mark.parametrize(
    "hyper", [{"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01}, {"momentum": 0.9}]
)
def test_fused_gives_the_unfused_numbers_up_to_rounding_and_nothing_outside_the_mask_moves(
    hyper, monkeypatch
):
    runs = {}
    for fused in (False, True):
        model = toy_tagger(tasks=("pos",), hidden=6)
        mech = SparseSharing(model, random_masks(model, ["pos"], 0.5))
        before = _weights(model)
        kept = KeepOptimizer(monkeypatch)
        settings = TrainSettings(epochs=2, patience=0, batch_size=8, fused=fused, **hyper)
        res = train(
            mech, [Task("pos", ToyData(0, sizes=(32, 8, 8)), "accuracy")], settings, seed=0, device="cpu"
        )
        assert bool(kept.made[0].defaults["fused"]) is fused
        _assert_outside_exact(mech, before, kept.made[0])
        runs[fused] = (_weights(model), [h["loss"] for h in res.history])
    (w0, l0), (w1, l1) = runs[False], runs[True]
    assert any(not torch.equal(w0[n], before[n]) for n in w0)  # it trained
    assert all(torch.allclose(w0[n], w1[n], atol=1e-5, rtol=1e-4) for n in w0)
    assert np.allclose(l0, l1, rtol=1e-5)


def _sequence_tasks():
    """Two tagging tasks of sentences 1 to 19 words long: batches of many lengths."""
    g = torch.Generator().manual_seed(0)
    raw = {
        split: [
            ([f"w{(i * 7 + j) % 11}" for j in range(n)], [f"T{(i + j) % 3}" for j in range(n)])
            for i, n in enumerate(torch.randint(1, 20, (k,), generator=g).tolist())
        ]
        for split, k in (("train", 30), ("dev", 6), ("test", 6))
    }
    words, chars = build_shared_vocabs([raw["train"]])
    data = {t: SequenceData(t, raw, words, chars) for t in ("pos", "ner")}
    tasks = {t: Task(t, d, "accuracy") for t, d in data.items()}
    return tasks, len(words), len(chars), {t: len(d.tag_vocab) for t, d in data.items()}


class Frames:
    """An ``on_eval`` callback: the number of frames compiled by the end of each epoch."""

    def __init__(self, counter):
        self.counter, self.per_epoch = counter, []

    def on_eval(self, dev) -> None:
        self.per_epoch.append(self.counter.frame_count)


def _compiled_run(backend, monkeypatch, compile=True, epochs=2):
    torch._dynamo.reset()
    tasks, n_words, n_chars, n_tags = _sequence_tasks()
    torch.manual_seed(0)
    model = build_tagger(n_words, n_chars, n_tags, word_dim=8, char_dim=4, char_filters=3, hidden=6)
    mech = SparseSharing(model, random_masks(model, list(tasks), 0.5))
    before = _weights(model)
    counter = CompileCounterWithBackend(backend)
    monkeypatch.setattr(trainer_mod, "COMPILE_BACKEND", counter)
    kept = KeepOptimizer(monkeypatch)
    frames = Frames(counter)
    settings = TrainSettings(
        epochs=epochs, patience=0, batch_size=5, optimizer="adam", lr=0.01, compile=compile
    )
    res = train(mech, tasks, settings, seed=0, device="cpu", callbacks=[frames], progress=False)
    lengths = {b.words.shape[1] for t in tasks.values() for b in t.data.batches("train", 5, shuffle=True)}
    return mech, before, kept.made[0], frames.per_epoch, res, lengths


def test_compile_reuses_its_graphs_across_lengths_and_masks_stay_exact(monkeypatch):
    mech, before, optimizer, frames, res, lengths = _compiled_run("aot_eager", monkeypatch)
    assert len(lengths) >= 4  # batches of many lengths
    assert 0 < frames[0] == frames[1]  # compiled in the first epoch, nothing more in the second
    _assert_outside_exact(mech, before, optimizer)
    eager, *_, plain, _ = _compiled_run("aot_eager", monkeypatch, compile=False)
    assert np.allclose([h["loss"] for h in res.history], [h["loss"] for h in plain.history], rtol=1e-4)
    compiled, uncompiled = _weights(mech), _weights(eager)  # the compiled forward masks as the eager one
    assert all(torch.allclose(compiled[n], uncompiled[n], atol=1e-5) for n in compiled)


def test_without_compile_nothing_is_compiled(monkeypatch):
    *_, frames, _, _ = _compiled_run("aot_eager", monkeypatch, compile=False, epochs=1)
    assert frames == [0]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler for inductor"
)
def test_compile_with_inductor_reuses_its_graphs_and_masks_stay_exact(monkeypatch):
    mech, before, optimizer, frames, res, _ = _compiled_run("inductor", monkeypatch)
    assert 0 < frames[0] == frames[1]
    _assert_outside_exact(mech, before, optimizer)
    assert all(np.isfinite(h["loss"]) for h in res.history)


class Rows:
    """``on_step`` and a forward pre-hook: the batch sizes of the training steps, and their count."""

    def __init__(self, module):
        self.rows, self.steps = [], []
        module.register_forward_pre_hook(
            lambda m, args: self.rows.append(args[0].shape[0]) if m.training else None
        )

    def on_step(self, step):
        self.steps.append(step)


@pytest.mark.parametrize("drop_last, steps, sizes", [(False, 5 + 3, {10, 8, 6}), (True, 4 + 2, {10})])
def test_drop_last_leaves_each_tasks_short_batch_out(drop_last, steps, sizes):
    model = toy_tagger()
    rec = Rows(model.encoder.word_embed)
    tasks = {"pos": Task("pos", ToyData(0, sizes=(48, 8, 8)), "accuracy"),
             "ner": Task("ner", ToyData(1, sizes=(26, 8, 8)), "accuracy")}  # fmt: skip
    settings = TrainSettings(epochs=2, patience=0, batch_size=10, drop_last=drop_last)
    train(model, tasks, settings, seed=0, device="cpu", callbacks=[rec], progress=False)
    assert rec.steps == list(range(1, 2 * steps + 1))
    assert set(rec.rows) <= sizes and (10 in rec.rows)
    if drop_last:
        assert set(rec.rows) == {10}


def test_drop_last_on_joint_data_and_a_task_smaller_than_a_batch():
    rng = np.random.default_rng(0)
    splits = {s: (rng.normal(size=(n, 3)), {"a": (rng.normal(size=n) > 0).astype(np.float32)})
              for s, n in (("train", 55), ("dev", 20), ("test", 20))}  # fmt: skip
    data = TabularData.from_arrays(splits, {"a": "binary"})
    from sparseshare.sharing.mmoe import mmoe

    mech = mmoe(3, data.kinds, num_experts=2, expert_hidden=(4,), tower=(4,))
    rec = Rows(mech.experts[0])
    steps = []

    class Count:
        def on_step(self, step):
            steps.append(step)

    s = TrainSettings(epochs=1, patience=0, batch_size=10, joint=True, drop_last=True)
    train(mech, {"a": Task("a", data, "auc")}, s, seed=0, device="cpu", joint_data=data, callbacks=[Count()])
    assert steps == [1, 2, 3, 4, 5] and set(rec.rows) == {10}
    with pytest.raises(
        ConfigError, match=r"^'train.drop_last': 'pos' has 8 training example\(s\), fewer than"
    ):
        train(toy_tagger(tasks=("pos",)), [Task("pos", ToyData(0, sizes=(8, 8, 8)), "accuracy")],
              TrainSettings(batch_size=10, drop_last=True), seed=0, device="cpu")  # fmt: skip
