import json

import pytest
import torch

from sparseshare.data.task import Task
from sparseshare.masks.io import load_masks
from sparseshare.masks.mask import density
from sparseshare.pruning import prunable_names
from sparseshare.training import search as search_mod
from sparseshare.training.search import Level, SearchSettings, search_task, select_level
from sparseshare.training.trainer import TrainSettings
from tests.helpers import ToyData, toy_tagger

TRAIN = TrainSettings(epochs=2, patience=2, batch_size=8, lr=0.2, clip=5.0)
SEARCH = SearchSettings(warmup_epochs=0, epochs_per_level=2, patience=2, alpha=0.3, min_density=0.3)


def _setup():
    spec = Task("pos", ToyData(0), "accuracy")
    model = toy_tagger(seed=0, tasks=("pos",))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(dict(model.named_parameters()))
    return spec, state, names


def _run(tmp, **kw):
    spec, state, names = _setup()
    found = search_task(
        toy_tagger(seed=0, tasks=("pos",)),
        state,
        spec,
        names,
        TRAIN,
        SEARCH,
        seed=3,
        device="cpu",
        directory=tmp,
        **kw,
    )
    return found.levels, found.masks


def test_levels_follow_algorithm_1(tmp_path):
    levels, masks = _run(tmp_path)
    dens = [lv.density for lv in levels]
    assert dens[0] == 1.0
    assert all(a > b for a, b in zip(dens, dens[1:]))
    assert dens[-1] <= SEARCH.min_density < dens[-2]
    for prev, nxt in zip(masks, masks[1:]):  # nested: each level prunes what remains
        assert all(not (nxt[n] & ~prev[n]).any() for n in prev)
        assert density(nxt) == pytest.approx(density(prev) * (1 - SEARCH.alpha), abs=2e-3)
    lines = (tmp_path / "pos.jsonl").read_text().splitlines()
    assert [json.loads(x)["level"] for x in lines] == list(range(len(levels)))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [2, 3])
def test_killed_search_resumes_to_identical_masks(tmp_path, monkeypatch, kill_at):
    ref_levels, ref_masks = _run(tmp_path / "ref")
    # kill the search in the middle of level `kill_at`'s pruning (after its training)
    real_prune, calls = search_mod.prune, {"n": 0}

    def dying_prune(*a, **k):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise _Killed
        return real_prune(*a, **k)

    monkeypatch.setattr(search_mod, "prune", dying_prune)
    with pytest.raises(_Killed):
        _run(tmp_path / "resumed")
    assert len((tmp_path / "resumed" / "pos.jsonl").read_text().splitlines()) == kill_at - 1
    monkeypatch.setattr(search_mod, "prune", real_prune)
    levels, masks = _run(tmp_path / "resumed")
    assert [lv.__dict__ for lv in levels] == [lv.__dict__ for lv in ref_levels]
    for a, b in zip(masks, ref_masks):
        assert all(torch.equal(a[n], b[n]) for n in a)
    for z in range(len(levels)):
        f = f"pos/level_{z:03d}.safetensors"
        got, want = load_masks(tmp_path / "resumed" / f)["pos"], load_masks(tmp_path / "ref" / f)["pos"]
        assert all(torch.equal(got[n], want[n]) for n in got)


def test_selection_best_dev_ties_to_sparsest_or_forced():
    lv = [Level(0, 1.0, 0.90, 1), Level(1, 0.8, 0.92, 1), Level(2, 0.64, 0.92, 1), Level(3, 0.51, 0.91, 1)]
    assert select_level(lv) == 2
    assert select_level(lv, forced_density=0.5) == 3
    assert select_level(lv, forced_density=0.85) == 1
    assert select_level(lv, higher_is_better=False) == 0  # an error metric: lowest is best


def test_a_levels_learning_rate_decay_is_the_searchs_own_when_set(tmp_path, monkeypatch):
    """search.lr_decay (the paper preset: 0.05 within a level, a constant rate for the systems)."""
    seen, real = [], search_mod.train

    def spy(mech, tasks, settings, **kw):
        seen.append(settings.lr_decay)
        return real(mech, tasks, settings, **kw)

    monkeypatch.setattr(search_mod, "train", spy)
    spec, state, names = _setup()
    train = TRAIN.replace(lr_decay=0.0)
    for decay, want in ((None, 0.0), (0.05, 0.05)):
        seen.clear()
        search_task(toy_tagger(seed=0, tasks=("pos",)), state, spec, names, train,
                    SEARCH.replace(lr_decay=decay), seed=3, device="cpu")  # fmt: skip
        assert seen and set(seen) == {want}
