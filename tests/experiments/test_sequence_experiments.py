"""The sparse-sharing paper's sequence experiments (configs/exp1_conll03, exp3_crf, negative_transfer,
task_pairs, sparsity_sweep, mtw_ablation) run through the CLI on tiny slices of the real data."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from sparseshare.cli import main
from sparseshare.experiments.run.sweep import sweep_points
from sparseshare.experiments.run.units import open_context
from sparseshare.experiments.systems.checks import load_experiment
from sparseshare.masks import load_masks
from sparseshare.training.checkpoint import load_tensors

pytestmark = pytest.mark.integration  # the CLI on real data, Ray clusters (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
# a tiny tagger, one epoch, three IMP levels (densities 1, 0.5, 0.25)
TINY = {
    "data.limits": "{train: 60, dev: 20, test: 20}",
    "data.embeddings": "null",
    "model.word_dim": 16,
    "model.char_dim": 8,
    "model.char_filters": 8,
    "model.hidden": 16,
    "train.epochs": 1,
    "train.patience": 1,
    "train.batch_size": 16,
    "search.warmup_epochs": 1,
    "search.epochs_per_level": 1,
    "search.patience": 1,
    "search.alpha": 0.5,
    "search.min_density": 0.25,
}
SWEEP_CONFIGS = {"task_pairs": 3, "sparsity_sweep": 7, "mtw_ablation": 2, "overlap_budget": 6}


def _run(name: str, out: Path, *flags: str, **extra) -> dict:
    sets = {**TINY, **extra}
    argv = ["run", str(ROOT / "configs" / f"{name}.yaml"), "--out", str(out), *flags]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def _phases(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def exp1(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "exp1"
    return out, _run("exp1_conll03", out)


def test_exp1_runs_the_six_systems_of_table_3(exp1):
    out, res = exp1
    order = ["single", "single_subnet", "hard", "cross_stitch", "hierarchical", "sparse"]
    assert list(res["systems"]) == order
    for sys in res["systems"].values():
        assert list(sys["tasks"]) == ["pos", "ner", "chunk"]
        for task, metric in (("pos", "accuracy"), ("ner", "f1"), ("chunk", "f1")):
            r = sys["tasks"][task]
            assert r["metric"] == metric and 0 <= r["test"] <= 1
    params = {n: s["params"] for n, s in res["systems"].items()}
    assert params["single"] == 3 * params["hard"]
    assert params["sparse"] <= params["hard"] < params["hierarchical"]
    assert params["cross_stitch"] > 2 * params["hard"]
    md = (out / "results.md").read_text()  # the paper's numbers beside ours, every row
    assert "| Single task (subnet) |" in md and "/ 95.11 |" in md and "/ 90.35 |" in md
    assert res["paper"]["values"]["sparse"]["chunk"]["f1"] == pytest.approx(0.9155)


def test_single_subnet_params_are_each_tasks_kept_weights(exp1):
    out, res = exp1
    masks = load_masks(out / "masks.safetensors")
    prunable = sum(m.numel() for m in next(iter(masks.values())).values())
    unpruned = res["systems"]["hard"]["params"] - prunable  # biases, ...
    kept = {t: sum(int(m.sum()) for m in mk.values()) for t, mk in masks.items()}
    assert res["systems"]["single_subnet"]["params"] == sum(kept.values()) + 3 * unpruned
    union = sum(int(torch.stack([masks[t][n] for t in masks]).any(0).sum()) for n in masks["pos"])
    assert res["systems"]["sparse"]["params"] == union + unpruned
    subnets = res["systems"]["single_subnet"]["subnets"]
    for t in masks:
        assert subnets[t]["density"] == pytest.approx(res["masks"][t]["density"])
        assert subnets[t]["selected"] == res["systems"]["sparse"]["search"][t]["selected"]


def test_single_subnet_steps_stay_inside_the_tasks_mask(exp1):
    out, _ = exp1
    masks = load_masks(out / "masks.safetensors")
    start = load_tensors(out / "search" / "warmup.safetensors")[0]  # the rewind point
    for t, mask in masks.items():
        best = load_tensors(out / "systems" / "single_subnet" / t / "best.safetensors")[0]
        moved = 0
        for n, m in mask.items():
            w = best[f"model.{n}"].cpu()
            assert torch.equal(w[~m], start[n][~m]), f"{t}: {n} changed outside the mask"
            moved += int((w[m] != start[n][m]).sum())
        assert moved > 0  # and it did train inside it


def test_one_search_serves_single_subnet_and_sparse(exp1):
    out, res = exp1
    records = _phases(out)
    assert sum(r["phase"] == "warmup" for r in records) == 1  # one warmup epoch, once
    for t in ("pos", "ner", "chunk"):
        levels = res["systems"]["sparse"]["search"][t]["levels"]
        assert [lv["density"] for lv in levels] == pytest.approx([1.0, 0.5, 0.25], abs=1e-3)
        searched = [r for r in records if r["phase"] == "search" and r["task"] == t]
        assert len(searched) == len(levels)  # not searched again for the second system


def test_jobs_train_systems_side_by_side_to_the_sequential_results(exp1, tmp_path):
    out, res = exp1
    par_out = tmp_path / "par"
    par = _run("exp1_conll03", par_out, "--jobs", "2")
    for name, sys in res["systems"].items():  # one torch thread per worker, as the sequential run
        assert par["systems"][name]["params"] == sys["params"]
        for t, r in sys["tasks"].items():
            assert (par["systems"][name]["tasks"][t]["dev"], par["systems"][name]["tasks"][t]["test"]) == (
                r["dev"],
                r["test"],
            ), f"{name} {t}"
    seq_masks, par_masks = load_masks(out / "masks.safetensors"), load_masks(par_out / "masks.safetensors")
    assert all(torch.equal(par_masks[t][n], m) for t in seq_masks for n, m in seq_masks[t].items())
    records = _phases(par_out)
    jobs = {r["unit"]: r for r in records if r["phase"] == "job"}
    searches = [f"search:{t}" for t in ("pos", "ner", "chunk")]
    assert set(jobs) == {"warmup", *searches, *res["systems"]}  # every unit ran in a Ray worker, once
    assert sum(r["phase"] == "job" for r in records) == len(jobs)
    pids = {r["pid"] for r in jobs.values()}
    assert len(pids) >= 2 and os.getpid() not in pids
    assert all(jobs[u]["threads"] == 1 for u in jobs)  # the two cores shared out by --jobs 2
    assert all(jobs[s]["start"] >= jobs["warmup"]["end"] for s in searches)
    assert all(jobs[u]["start"] >= jobs[s]["end"] for u in ("single_subnet", "sparse") for s in searches)
    assert sum(r["phase"] == "warmup" for r in records) == 1
    assert "up to 2 Ray units at once" in par["meta"]["machine"]
    assert _run("exp1_conll03", par_out, "--jobs", "2") == par  # finished: shown, nothing rerun


@pytest.mark.skipif(not (SHARED / "ptb_sample").is_dir(), reason="../shared/data absent")
def test_exp3_mixes_three_corpora_with_crf_decoders(tmp_path):
    out = tmp_path / "exp3"
    paths = f"{{ptb: {SHARED / 'ptb_sample'}, conll2000: {SHARED / 'conll2000'}}}"
    res = _run("exp3_crf", out, **{"data.paths": paths, "data.dev_size": 20})
    assert list(res["systems"]) == ["single", "hard", "sparse"]
    for sys in res["systems"].values():
        assert set(sys["tasks"]) == {"pos", "ner", "chunk"}
    state = load_tensors(out / "systems" / "hard" / "best.safetensors")[0]
    assert {f"heads.{t}.crf.transitions" for t in ("pos", "ner", "chunk")} <= set(state)
    cfg = load_experiment(out / "config.yaml")
    assert cfg.data.task_sources() == {"pos": "ptb", "chunk": "conll2000", "ner": "conll2003"}
    md = (out / "results.md").read_text()
    assert "| Meta-MTL-LSTM† |" in md and "/ 97.57 |" in md  # other papers' rows, then ours
    assert 0 < res["overlap"]["all"] <= 1


def test_negative_transfer_pairs_ner_with_position_prediction(tmp_path):
    out = tmp_path / "neg"
    res = _run("negative_transfer", out, **{"model.char_filters": 0})
    assert list(res["systems"]) == ["single", "hard", "sparse"]
    for sys in res["systems"].values():
        assert sys["tasks"]["position"]["metric"] == "accuracy" and sys["tasks"]["ner"]["metric"] == "f1"
    assert set(res["overlap"]["pairwise"]) == {"ner|position"}
    cfg = load_experiment(ROOT / "configs/negative_transfer.yaml")
    # the authors' model: random 50-d words, no character features, a 1-layer BiLSTM of 50
    m = cfg.model
    assert (m.hidden, m.layers, m.word_dim, m.char_filters, cfg.data.embeddings) == (50, 1, 50, 0, None)
    assert "/ 61.62 |" in (out / "results.md").read_text()  # hard sharing's NER in Table 6


@pytest.mark.parametrize("name,n", SWEEP_CONFIGS.items())
def test_sweep_configs_validate_every_point(name, n):
    points = sweep_points(load_experiment(ROOT / "configs" / f"{name}.yaml"))
    assert len(points) == n


def test_sparsity_sweep_forces_one_density_on_every_task():
    for p in sweep_points(load_experiment(ROOT / "configs/sparsity_sweep.yaml")):
        d = float(p.labels["density"])
        assert p.cfg.search.force_density == {"pos": d, "ner": d, "chunk": d}


@pytest.mark.slow  # a sweep of every pair, 20 s: make test-slow
def test_task_pairs_sweep_shows_overlap_and_gain_per_pair(tmp_path):
    out = tmp_path / "pairs"
    res = _run("task_pairs", out)
    pts = {p["labels"]["pair"]: p for p in res["sweep"]["points"]}
    assert list(pts) == ["pos+ner", "ner+chunk", "pos+chunk"]
    for label, p in pts.items():
        assert set(p["systems"]) == {"hard", "sparse"}
        assert set(p["systems"]["sparse"]["tasks"]) == set(label.split("+"))
        assert 0 < p["overlap"]["all"] <= 1
    md = (out / "results.md").read_text()
    assert "OR (all)" in md and "Δ avg vs hard" in md
    row = next(line for line in md.splitlines() if line.startswith("| pos+chunk | Sparse sharing |"))
    systems = pts["pos+chunk"]["systems"]

    def avg(s: str, lenient: bool) -> float:
        rs = systems[s]["tasks"].values()
        return sum(r["all"]["test"].get("f1_lenient", r["test"]) if lenient else r["test"] for r in rs) / 2

    gain = {k: 100 * (avg("sparse", k) - avg("hard", k)) for k in (True, False)}  # the paper's scorer first
    assert f"{gain[True]:+.2f} (strict {gain[False]:+.2f}) / +0.05" in row
    assert f"{pts['pos+chunk']['overlap']['all']:.3f} (chance " in row and ") / 0.50 |" in row


@pytest.mark.slow  # six points over one search; task_pairs and overlap_budget cover the sweep path
def test_sparsity_sweep_searches_once_and_orders_overlap(tmp_path):
    out = tmp_path / "sparsity"
    grid = "{'1.0': {search.force_density: {pos: 1.0, ner: 1.0, chunk: 1.0}}, "
    grid += "'0.25': {search.force_density: {pos: 0.25, ner: 0.25, chunk: 0.25}}}"
    res = _run("sparsity_sweep", out, **{"sweep.density": grid})
    pts = {p["labels"]["density"]: p for p in res["sweep"]["points"]}
    assert pts["1.0"]["overlap"]["all"] == 1.0  # all-ones masks: hard sharing
    assert all(v["density"] == 1.0 for v in pts["1.0"]["masks"].values())
    assert all(v["density"] == pytest.approx(0.25, abs=1e-3) for v in pts["0.25"]["masks"].values())
    assert pts["0.25"]["overlap"]["all"] < 1
    first, second = (out / "points" / f"density={d}" for d in ("1.0", "0.25"))
    assert any(r["phase"] == "search" for r in _phases(first))
    reused = _phases(second)
    assert not any(r["phase"] in ("search", "warmup") for r in reused)
    assert any(r["phase"] == "search_reused" for r in reused)
    for t in ("pos", "ner", "chunk"):
        f = Path("search") / f"{t}.jsonl"
        assert (first / f).read_text() == (second / f).read_text()
    assert (out / "figures" / "sweep.png").stat().st_size > 1000
    # --jobs 2: the points' units side by side; the second point still waits for the first's search
    par = _run("sparsity_sweep", tmp_path / "par", "--jobs", "2", **{"sweep.density": grid})
    assert [p["systems"] for p in par["sweep"]["points"]] == [p["systems"] for p in res["sweep"]["points"]]
    first, second = (tmp_path / "par" / "points" / f"density={d}" for d in ("1.0", "0.25"))
    reused = _phases(second)
    assert not any(r["phase"] in ("search", "warmup") for r in reused)
    assert any(r["phase"] == "search_reused" for r in reused)
    jobs = [r for d in (first, second) for r in _phases(d) if r["phase"] == "job"]
    assert len(jobs) == 2 * (1 + 3 + len(res["sweep"]["points"][0]["systems"]))  # warmup, 3 searches
    assert len({r["pid"] for r in jobs}) >= 2


@pytest.mark.slow  # the Table 8 sweep: ~20 s; tests/training run the search without warmup
def test_mtw_ablation_without_warmup_rewinds_to_the_random_init(tmp_path):
    out = tmp_path / "mtw"
    axis = "{mtw: {search.warmup_epochs: 1}, none: {search.warmup_epochs: 0}}"
    res = _run("mtw_ablation", out, **{"sweep.warmup": axis})
    assert [p["labels"]["warmup"] for p in res["sweep"]["points"]] == ["mtw", "none"]
    with_mtw, without = (out / "points" / f"warmup={w}" for w in ("mtw", "none"))
    assert not any(r["phase"] == "warmup" for r in _phases(without))
    cfg = load_experiment(without / "config.yaml")
    init = open_context(cfg, tmp_path).build_model().state_dict()  # θ^(0), the seeded initialisation
    rewind = load_tensors(without / "search" / "warmup.safetensors")[0]
    assert set(rewind) == set(init) and all(torch.equal(rewind[k], init[k]) for k in init)
    warmed = load_tensors(with_mtw / "search" / "warmup.safetensors")[0]
    assert not torch.equal(warmed["encoder.lstm.weight_ih_l0"], init["encoder.lstm.weight_ih_l0"])
    md = (out / "results.md").read_text()
    assert "/ 95.36 |" in md and "/ 95.56 |" in md  # Table 8, with and without MTW


@pytest.mark.slow  # a Ray sweep resumed: ~40 s quiet; the cluster tests resume a run
def test_jobs_resume_shares_a_finished_points_search(tmp_path):
    out = tmp_path / "sweep"
    sets = {
        "systems": "[hard, sparse]",
        "sweep.density": "{'1.0': {search.force_density: {pos: 1.0, ner: 1.0, chunk: 1.0}}, "
        "'0.25': {search.force_density: {pos: 0.25, ner: 0.25, chunk: 0.25}}}",
    }
    res = _run("sparsity_sweep", out, "--jobs", "2", **sets)
    first, second = (out / "points" / f"density={d}" for d in ("1.0", "0.25"))
    # as if killed: the first point lost its hard system (its search is complete), the second never began
    for f in (out / "results.json", first / "results.json"):
        f.unlink()
    shutil.rmtree(first / "systems" / "hard")
    shutil.rmtree(second)
    again = _run("sparsity_sweep", out, "--jobs", "2", **sets)
    assert [p["systems"] for p in again["sweep"]["points"]] == [p["systems"] for p in res["sweep"]["points"]]
    units = [r["unit"] for d in (first, second) for r in _phases(d) if r["phase"] == "job"]
    assert units.count("warmup") == 2  # the first point searched; the second (resumed) read back a copy
    reused = _phases(second)
    assert not any(r["phase"] in ("search", "warmup") for r in reused)
    assert any(r["phase"] == "search_reused" for r in reused)


def test_a_seed_axis_on_a_sequence_experiment_gives_mean_and_sd(tmp_path):
    out = tmp_path / "seeds"
    res = _run("quickstart", out, sweep="{seed: {'1': {seed: 1}, '2': {seed: 2}}}", systems="[hard]")
    pts = res["sweep"]["points"]
    assert [p["point"] for p in pts] == ["seed=1", "seed=2"]
    a, b = (p["systems"]["hard"]["tasks"]["ner"]["test"] for p in pts)
    md = (out / "results.md").read_text()
    row = next(x for x in md.split("Over seeds:")[1].splitlines() if x.startswith("| Hard sharing | 2 |"))
    sd = abs(a - b) / 2**0.5 * 100
    assert f"{100 * (a + b) / 2:.2f} ± {sd:.2f}" in row


@pytest.mark.slow  # 13 s: make test-slow
def test_overlap_budget_compares_masks_at_matched_densities_beside_chance(tmp_path):
    out = tmp_path / "budget"
    at = {d: f"{{search.force_density: {{pos: {d}, chunk: {d}, ner: {d}}}}}" for d in (0.5, 0.25)}
    sweep = "{budget: {'1': {search.epochs_per_level: 1}}, "
    sweep += f"density: {{'0.5': {at[0.5]}, '0.25': {at[0.25]}}}}}"
    res = _run("overlap_budget", out, sweep=sweep)
    for p in res["sweep"]["points"]:
        d = float(p["labels"]["density"])
        assert all(v["density"] == pytest.approx(d, abs=0.01) for v in p["masks"].values())
        base = p["overlap"]["baseline"]["all"]
        assert base["chance"] == pytest.approx(d**3 / (3 * d - 3 * d**2 + d**3), rel=0.05)
    md = (out / "results.md").read_text()
    assert "(chance 0." in next(x for x in md.splitlines() if x.startswith("| 1 | 0.25 | Sparse sharing |"))
