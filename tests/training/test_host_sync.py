"""No host sync in a training step (issue goal 5): a step never reads a device value back to the host, so
on a GPU the host queues the next step while the device runs this one.

A CPU cannot show a sync, but it shows the ops that force one on a device: a dispatch spy
(``TorchDispatchMode``) counts ``_local_scalar_dense`` (``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``),
``is_nonzero``, ``equal``, ``nonzero`` and the other ops whose output size depends on values. Counted
between the first and the last step of an epoch (the once-per-epoch reads, the mean loss and the dev
scores, fall outside): none, for hard and sparse sharing on the tagger and for MMoE's joint steps, under
every option a GPU user switches on.
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparseshare.data.sequence import SequenceData, build_shared_vocabs
from sparseshare.data.tabular import TabularData
from sparseshare.data.task import Task
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing import HardSharing, SparseSharing
from sparseshare.sharing.mmoe import mmoe
from sparseshare.training.trainer import TrainSettings, train
from tests.helpers import random_masks

aten = torch.ops.aten
# ops that wait for the device: a value read to the host, or an output whose size depends on values
SYNCING = {
    aten._local_scalar_dense.default,
    aten.item.default,
    aten.is_nonzero.default,
    aten.equal.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.repeat_interleave.Tensor,
}


# reads of tensors that live on the CPU whatever the device (no sync there), as the (file, function)
# that reads them: the sentence lengths and word widths of a split, which SequenceData keeps on the
# CPU to size each batch; a packed sequence's batch_sizes, which nn.LSTM reads for the size of its
# initial state; the lengths a sequence batch carries on the CPU for packing, which the tagger's bilstm
# reads; the step count of a (not fused, not capturable) Adam, a CPU tensor its update reads
ON_THE_CPU_BY_DESIGN = {
    ("sparseshare/data/sequence.py", "batch"),
    ("torch/nn/modules/rnn.py", "forward"),
    ("sparseshare/models/tagger.py", "bilstm"),
    ("torch/optim/optimizer.py", "_get_value"),
}
# the frames between a Python call and the dispatch of its op
PASSING = ("torch/_compile.py", "torch/_dynamo/eval_frame.py", "torch/utils/_python_dispatch.py")


def _reader(frames) -> tuple[str, str]:
    """(file, function) of the innermost frame that is not on the way to the dispatch."""
    f = next(f for f in reversed(frames) if not f.filename.endswith(PASSING))
    return next(((p, n) for p, n in ON_THE_CPU_BY_DESIGN if f.filename.endswith(p) and f.name == n),
                (f.filename, f.name))  # fmt: skip


class SyncSpy(TorchDispatchMode):
    """Records every syncing op dispatched while it is active, with the step it ran in and the function
    that asked for it (reads of what stays on the CPU on every device, ``ON_THE_CPU_BY_DESIGN``, left
    out)."""

    def __init__(self):
        super().__init__()
        self.step, self.seen = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNCING:
            reader = _reader(traceback.extract_stack()[:-1])  # less this frame
            if reader not in ON_THE_CPU_BY_DESIGN:
                self.seen.append((self.step, str(func), reader))
        return func(*args, **(kwargs or {}))


class StepMarks:
    """A callback telling the spy which step is running (``on_step(k)``: step k ended, k + 1 begins)."""

    def __init__(self, spy: SyncSpy):
        self.spy, self.ends = spy, []

    def on_step(self, step: int) -> None:
        self.spy.step = step
        self.ends.append(step)


def _syncs_within_steps(mech, tasks, settings, **kw) -> tuple[list, int]:
    """The syncing ops run after the first step of each epoch and up to its last one (the steps between
    are whole: data, forward, backward, clip, step, callbacks), and the number of steps spied on."""
    spy = SyncSpy()
    marks = StepMarks(spy)
    with spy:
        train(mech, tasks, settings, seed=0, device="cpu", callbacks=[marks], progress=False, **kw)
    per_epoch = len(marks.ends) // settings.epochs
    inside = set()
    for e in range(settings.epochs):
        inside |= set(range(e * per_epoch + 1, (e + 1) * per_epoch))  # steps 2..last of epoch e
    return [s for s in spy.seen if s[0] in inside], len(inside)


def _tagger_tasks():
    """Two tagging tasks of sentences 1 to 12 words long, as SequenceData batches them (with their
    lengths on the CPU, for packing)."""
    g = torch.Generator().manual_seed(0)
    raw = {
        split: [
            ([f"w{(i * 7 + j) % 11}" for j in range(n)], [f"T{(i + j) % 3}" for j in range(n)])
            for i, n in enumerate(torch.randint(1, 13, (k,), generator=g).tolist())
        ]
        for split, k in (("train", 40), ("dev", 8), ("test", 8))
    }
    words, chars = build_shared_vocabs([raw["train"]])
    return {t: Task(t, SequenceData(t, raw, words, chars), "accuracy") for t in ("pos", "ner")}


def _tagger(tasks):
    torch.manual_seed(0)
    n_tags = {t: len(task.data.tag_vocab) for t, task in tasks.items()}
    data = next(iter(tasks.values())).data
    return build_tagger(len(data.word_vocab), len(data.char_vocab), n_tags, word_dim=6, char_dim=4,
                        char_filters=3, hidden=8)  # fmt: skip


OPTIONS = {
    "plain sgd": {},
    "momentum, clip": {"momentum": 0.9, "clip": 1.0},
    "adam": {"optimizer": "adam", "lr": 0.01},
    "fused adam, bf16": {"optimizer": "adam", "lr": 0.01, "fused": True, "precision": "bf16"},
    "fused adam, fp16": {"optimizer": "adam", "lr": 0.01, "fused": True, "precision": "fp16"},
    "drop_last": {"drop_last": True},
}


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("mechanism", ["hard", "sparse"])
def test_a_tagger_step_never_waits_for_the_device(mechanism, options):
    tasks = _tagger_tasks()
    model = _tagger(tasks)
    masks = random_masks(model, model.tasks, 0.5)
    mech = HardSharing(model) if mechanism == "hard" else SparseSharing(model, masks)
    settings = TrainSettings(epochs=2, patience=0, batch_size=8, **OPTIONS[options])
    syncs, steps = _syncs_within_steps(mech, tasks, settings)
    assert steps >= 6
    assert syncs == []


def _tabular():
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 200), ("dev", 50), ("test", 50)):
        x = rng.normal(size=(n, 5))
        splits[split] = (x, {"a": (x[:, 0] > 0).astype(np.float32), "b": x[:, 1].astype(np.float32)})
    return TabularData.from_arrays(splits, {"a": "binary", "b": "regression"})


@pytest.mark.parametrize("options", ["plain sgd", "fused adam, bf16", "fused adam, fp16"])
def test_an_mmoe_joint_step_never_waits_for_the_device(options):
    data = _tabular()
    tasks = {"a": Task("a", data, "auc"), "b": Task("b", data, "mse")}
    mech = mmoe(5, data.kinds, num_experts=3, expert_hidden=(8,), tower=(8,))
    settings = TrainSettings(epochs=2, patience=0, batch_size=25, joint=True, **OPTIONS[options])
    syncs, steps = _syncs_within_steps(mech, tasks, settings, joint_data=data)
    assert steps >= 12
    assert syncs == []


def test_the_spy_sees_a_sync():
    """The spy is no blind one: a step that reads its loss (``.item()``) is counted, once a step."""
    spy = SyncSpy()
    with spy:
        for _ in range(3):
            (torch.ones(3, requires_grad=True) * 2).sum().item()
    assert [f for _, f, _ in spy.seen] == ["aten._local_scalar_dense.default"] * 3
    assert spy.seen[0][2] == (__file__, "test_the_spy_sees_a_sync")


def test_fp16_reads_the_overflow_flag_once_a_step_unless_the_optimizer_is_fused():
    """torch's GradScaler steps an unfused optimizer only after reading whether the gradients overflowed:
    one read a step, in the scaler (what the trainer's docstring says; ``train.fused`` avoids it)."""
    tasks = _tagger_tasks()
    settings = TrainSettings(epochs=1, patience=0, batch_size=8, precision="fp16")
    syncs, steps = _syncs_within_steps(HardSharing(_tagger(tasks)), tasks, settings)
    assert len(syncs) == steps and {r[0].rsplit("/", 1)[-1] for _, _, r in syncs} == {"grad_scaler.py"}
