"""Every registered sharing mechanism over the tagger: output per task, no NaN, trainer, state round trip."""

import pytest
import torch

from sparseshare.models import build_tagger
from sparseshare.sharing import MECHANISMS, build_mechanism
from sparseshare.training.trainer import TaskSpec, TrainSettings, evaluate, train
from tests.helpers import ToyData, random_masks, toy_batch

TASKS = ("pos", "ner")
N_TAGS = {"pos": 5, "ner": 4}


def _build(name, decoder="linear", seed=0):
    torch.manual_seed(seed)
    layers = 2 if name == "hierarchical" else 1
    base = build_tagger(30, 12, N_TAGS, 6, 4, 3, hidden=8, layers=layers, dropout=0.1, decoder=decoder)
    kwargs = {"masks": random_masks(base, TASKS, 0.7)} if name == "sparse" else {}
    return build_mechanism(name, base, **kwargs)


def test_every_registered_mechanism_is_covered():
    assert set(MECHANISMS) == {"hard", "sparse", "cross_stitch", "hierarchical"}


@pytest.mark.parametrize("decoder", ["linear", "crf"])
@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_an_output_per_task_without_nan(name, decoder):
    mech = _build(name, decoder)
    assert mech.tasks == list(TASKS)
    batch = toy_batch(0, n_tags=4)
    for t in TASKS:
        out = mech(batch, t)
        assert out.shape == (*batch.words.shape, N_TAGS[t]) and torch.isfinite(out).all()
        loss = mech.loss(batch, t)
        assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
        pred = mech.decode(batch, t)
        assert [len(p) for p in pred] == batch.mask.sum(1).tolist()
        assert all(0 <= k < N_TAGS[t] for p in pred for k in p)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_state_dict_round_trip_restores_every_output(name):
    a, b = _build(name, seed=0).eval(), _build(name, seed=1).eval()
    batch = toy_batch(1, n_tags=4)
    assert not torch.allclose(a(batch, "ner"), b(batch, "ner"))
    b.load_state_dict(a.state_dict())
    for t in TASKS:
        assert torch.equal(a(batch, t), b(batch, t))


@pytest.mark.parametrize("name", ["cross_stitch", "hierarchical"])
def test_the_trainer_trains_resumes_and_restores_the_best_state(name, tmp_path):
    mech = _build(name, decoder="crf")
    specs = {t: TaskSpec(t, ToyData(i, n_tags=N_TAGS[t]), "accuracy") for i, t in enumerate(TASKS)}
    before = sum(evaluate(mech, specs[t], "dev", 100, "cpu")["accuracy"] for t in TASKS)
    settings = TrainSettings(epochs=4, patience=0, batch_size=8, lr=0.5)
    res = train(mech, specs, settings, seed=0, device="cpu", ckpt_dir=tmp_path, desc=name)
    assert res.history[-1]["loss"] < 0.8 * res.history[0]["loss"]
    mech.load_state_dict(res.best_state)
    after = sum(evaluate(mech, specs[t], "dev", 100, "cpu")["accuracy"] for t in TASKS)
    assert after > before + 0.3
    again = train(_build(name, decoder="crf"), specs, settings, seed=0, device="cpu", ckpt_dir=tmp_path)
    assert again.best_epoch == res.best_epoch and again.epochs_run == res.epochs_run  # finished: reloaded
