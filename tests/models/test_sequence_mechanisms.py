"""The mechanisms over the tagger with both decoders: tag sequences per task, trainer, resume."""

import pytest
import torch

from sparseshare.data.task import Task
from sparseshare.models import build_tagger
from sparseshare.sharing import MECHANISMS, build_mechanism
from sparseshare.training.evaluation import evaluate_task as evaluate
from sparseshare.training.trainer import TrainSettings, train
from tests.helpers import ToyData, random_masks, toy_batch

TASKS = ("pos", "ner")
N_TAGS = {"pos": 5, "ner": 4}
TAGGER_MECHANISMS = sorted(n for n, e in MECHANISMS.items() if e.family in ("wrapper", "tagger"))


def _build(name, decoder="linear", seed=0):
    torch.manual_seed(seed)
    layers = 2 if name == "hierarchical" else 1
    base = build_tagger(30, 12, N_TAGS, 6, 4, 3, hidden=8, layers=layers, dropout=0.1, decoder=decoder)
    kwargs = {"masks": random_masks(base, TASKS, 0.7)} if name == "sparse" else {}
    return build_mechanism(name, base, **kwargs)


@pytest.mark.parametrize("decoder", ["linear", "crf"])
@pytest.mark.parametrize("name", TAGGER_MECHANISMS)
def test_an_output_per_task_without_nan(name, decoder):
    mech = _build(name, decoder)
    assert mech.tasks == list(TASKS)
    batch = toy_batch(0, n_tags=4)
    for t in TASKS:
        out = mech(batch, t)
        assert out.shape == (*batch.words.shape, N_TAGS[t]) and torch.isfinite(out).all()
        loss = mech.loss(batch, t)
        assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
        pred = mech.predict(batch, t)
        assert [len(p) for p in pred] == batch.mask.sum(1).tolist()
        assert all(0 <= k < N_TAGS[t] for p in pred for k in p)


@pytest.mark.parametrize("name", ["cross_stitch_tagger", "hierarchical"])
def test_the_trainer_trains_resumes_and_restores_the_best_state(name, tmp_path):
    mech = _build(name, decoder="crf")
    specs = {t: Task(t, ToyData(i, n_tags=N_TAGS[t]), "accuracy") for i, t in enumerate(TASKS)}
    before = sum(evaluate(mech, specs[t], "dev", 100, "cpu")["accuracy"] for t in TASKS)
    settings = TrainSettings(epochs=4, patience=0, batch_size=8, lr=0.5)
    res = train(mech, specs, settings, seed=0, device="cpu", directory=tmp_path, desc=name)
    assert res.history[-1]["loss"] < 0.8 * res.history[0]["loss"]
    mech.load_state_dict(res.best_state)
    after = sum(evaluate(mech, specs[t], "dev", 100, "cpu")["accuracy"] for t in TASKS)
    assert after > before + 0.3
    again = train(_build(name, decoder="crf"), specs, settings, seed=0, device="cpu", directory=tmp_path)
    assert again.best_epoch == res.best_epoch and again.epochs_run == res.epochs_run  # finished: reloaded
