import pytest
import torch

from sparseshare.data.task import Task
from sparseshare.errors import ConfigError
from sparseshare.pruning import prunable_names
from sparseshare.pruning.finders import FINDERS, random_scores, snip_scores
from sparseshare.pruning.schedules import imp_densities
from sparseshare.training import search as search_mod
from sparseshare.training.search import SearchSettings, search_task
from sparseshare.training.settings import METHOD_NAMES
from sparseshare.training.trainer import TrainSettings
from tests.helpers import ToyData, toy_tagger

TRAIN = TrainSettings(epochs=1, patience=1, batch_size=8, lr=0.2, clip=5.0)
SEARCH = SearchSettings(warmup_epochs=0, epochs_per_level=1, patience=1, alpha=0.5, min_density=0.3)


def _search(method, seed=3):
    spec = Task("pos", ToyData(0), "accuracy")
    model = toy_tagger(seed=0, tasks=("pos",))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(dict(model.named_parameters()))
    found = search_task(model, state, spec, names, TRAIN, SEARCH.replace(method=method), seed=seed,
                        device="cpu", progress=False)  # fmt: skip
    return found, state, names


def test_names_match_registry():
    assert tuple(FINDERS) == METHOD_NAMES


@pytest.mark.parametrize("method", ["oneshot", "snip", "random"])
def test_densities_and_prunable_only(method):
    found, state, names = _search(method)
    ladder = imp_densities(SEARCH.alpha, SEARCH.min_density)
    assert [lv.density for lv in found.levels] == pytest.approx(ladder, abs=2e-3)
    for m in found.masks:
        assert sorted(m) == sorted(names)
    for prev, nxt in zip(found.masks, found.masks[1:]):  # nested: the top of fixed scores
        assert all(not (nxt[n] & ~prev[n]).any() for n in prev)
    assert found.select() in range(len(found.levels))


def test_oneshot_keeps_largest_rewind_weights():
    found, state, names = _search("oneshot")
    last = found.masks[-1]
    kept = torch.cat([state[n].abs().reshape(-1)[last[n].reshape(-1)] for n in names])
    gone = torch.cat([state[n].abs().reshape(-1)[~last[n].reshape(-1)] for n in names])
    assert kept.min() >= gone.max()


def test_snip_scores_by_hand():
    w = {"a": torch.tensor([1.0, -2.0, 3.0])}
    g = {"a": torch.tensor([-4.0, 0.5, 0.1])}
    assert torch.allclose(snip_scores(w, g)["a"], torch.tensor([4.0, 1.0, 0.3]))


def test_snip_ranks_by_grad_times_weight(monkeypatch):
    spec = Task("pos", ToyData(0), "accuracy")
    model = toy_tagger(seed=0, tasks=("pos",))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(dict(model.named_parameters()))
    scores = search_mod.finder_scores("snip", model, state, spec, names, TRAIN, 3, "cpu")
    # by hand: one batch's loss gradient at θ^(w), the same batch the finder draws
    from sparseshare.sharing.sparse import SparseSharing
    from sparseshare.training.streams import stream_seed

    model.eval()
    mech = SparseSharing(model, {"pos": {n: torch.ones_like(state[n], dtype=torch.bool) for n in names}})
    gen = torch.Generator().manual_seed(stream_seed(3, "snip", "pos"))
    batch = next(iter(spec.data.batches("train", TRAIN.batch_size, shuffle=True, generator=gen)))
    mech.loss(batch, "pos").backward()
    params = dict(model.named_parameters())
    for n in names:
        assert torch.allclose(scores[n], (params[n].grad * params[n].detach()).abs(), atol=1e-7)
    assert any(not torch.equal(scores[n].argsort(), state[n].abs().argsort()) for n in names)


def test_random_seeded_and_differs_from_magnitude():
    a, _, _ = _search("random", seed=3)
    b, _, _ = _search("random", seed=3)
    c, _, _ = _search("random", seed=4)
    o, _, _ = _search("oneshot", seed=3)
    last = lambda f: f.masks[-1]  # noqa: E731
    assert all(torch.equal(last(a)[n], last(b)[n]) for n in last(a))
    assert any(not torch.equal(last(a)[n], last(c)[n]) for n in last(a))
    assert any(not torch.equal(last(a)[n], last(o)[n]) for n in last(a))
    s1 = random_scores({"x": torch.Size([5])}, 7)
    torch.manual_seed(0)
    assert torch.equal(s1["x"], random_scores({"x": torch.Size([5])}, 7)["x"])


def test_unknown_method_one_line():
    problems = SearchSettings(method="lottery").problems()
    assert problems == ["'search.method': unknown 'lottery'; valid: ['imp', 'oneshot', 'snip', 'random']"]
    with pytest.raises(ConfigError, match="search.method.*valid"):
        _search("lottery")


def test_imp_fingerprint_has_no_method(tmp_path):
    spec = Task("pos", ToyData(0), "accuracy")
    model = toy_tagger(seed=0, tasks=("pos",))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(dict(model.named_parameters()))
    search_task(model, state, spec, names, TRAIN, SEARCH, seed=3, device="cpu", directory=tmp_path,
                progress=False)  # fmt: skip
    text = next(tmp_path.rglob("*fingerprint*")).read_text()
    assert "method" not in text


@pytest.mark.parametrize("method, finder", [("snip", "SNIP"), ("imp", "IMP")])
def test_a_levels_line_names_its_finder(method, finder, caplog):
    caplog.set_level("INFO", logger="sparseshare")
    _search(method)
    lines = [r.getMessage() for r in caplog.records if ": level " in r.getMessage()]
    assert lines and all(line.startswith(f"{finder} pos: level ") for line in lines), lines
