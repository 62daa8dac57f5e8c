"""The whole flow on a small slice of real CoNLL-2003 (configs/smoke.yaml), through the CLI."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from sparseshare.cli import main
from sparseshare.data.readers import conll2003_tasks as conll03_tasks
from sparseshare.data.sources import get_source, resolve
from sparseshare.masks import load_masks
from sparseshare.training.checkpoint import load_tensors
from sparseshare.training.progress import duration
from tests.experiments import pinned
from tests.helpers import export_reproduces_the_run

pytestmark = pytest.mark.integration  # the CLI on real data, Ray clusters (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out)]) == 0
    return out


def test_real_conll2003_counts_and_schemes():
    data = conll03_tasks(resolve(get_source("conll2003")))
    assert [len(data["ner"][s]) for s in ("train", "dev", "test")] == [14041, 3250, 3453]
    tags = {t for _, ts in data["ner"]["train"] for t in ts}
    assert {"S-PER", "E-ORG", "B-LOC"} <= tags  # BIOES
    chunk = {t for _, ts in data["chunk"]["train"] for t in ts}
    assert "B-NP" in chunk and not any(t.startswith(("E-", "S-")) for t in chunk)  # BIO2


def test_results_json_schema(smoke_run, capsys):
    res = json.loads((smoke_run / "results.json").read_text())
    assert res["experiment"] == "smoke"
    assert set(res["systems"]) == {"single", "hard", "sparse"}
    for sys in res["systems"].values():
        assert sys["params"] > 0
        for task, metric in (("pos", "accuracy"), ("chunk", "f1"), ("ner", "f1")):
            r = sys["tasks"][task]
            assert r["metric"] == metric and 0 <= r["test"] <= 1 and 0 <= r["dev"] <= 1
            assert r["all"]["test"][metric] == r["test"]
    params = {n: s["params"] for n, s in res["systems"].items()}
    assert params["single"] == 3 * params["hard"] and params["sparse"] < params["hard"]
    assert set(res["masks"]) == {"pos", "chunk", "ner"}
    assert set(res["overlap"]["pairwise"]) == {"pos|chunk", "pos|ner", "chunk|ner"}
    assert 0 < res["overlap"]["all"] <= 1


def test_search_levels_masks_and_figures(smoke_run):
    masks = load_masks(smoke_run / "masks.safetensors")
    for task in ("pos", "chunk", "ner"):
        lines = (smoke_run / "search" / f"{task}.jsonl").read_text().splitlines()
        levels = [json.loads(x) for x in lines]
        assert len(levels) >= 3 and levels[0]["density"] == 1.0
        sel = json.loads((smoke_run / "results.json").read_text())["systems"]["sparse"]["search"][task]
        assert masks[task] and sel["density"] == pytest.approx(levels[sel["selected"]]["density"])
    assert (smoke_run / "figures" / "search_dev_vs_density.png").stat().st_size > 1000
    assert (smoke_run / "figures" / "overlap.png").stat().st_size > 1000
    md = (smoke_run / "results.md").read_text()
    assert "Sparse sharing" in md
    res = json.loads((smoke_run / "results.json").read_text())["systems"]["sparse"]["search"]
    spent = ", ".join(
        f"{t} {v['epochs']} over {len(v['levels'])} levels (budget 1 per level)" for t, v in res.items()
    )
    assert f"Epochs spent in the IMP search (after the warmup): {spent}." in md
    assert all(v["epochs"] >= len(v["levels"]) for v in res.values())  # >= 1 epoch per level


def test_finished_run_shown_not_rerun_and_report_masks_commands(smoke_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*") if p.is_file()}
    # the same command again prints the finished run's table and touches nothing
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(smoke_run)]) == 0
    out, err = capsys.readouterr()
    assert "finished" in err and "| Sparse sharing |" in out
    # another config into the same directory is refused
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(smoke_run), "--set", "seed=7"]) == 2
    assert "different config" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*") if p.is_file()} == before
    assert main(["report", str(smoke_run)]) == 0
    assert "| Hard sharing |" in capsys.readouterr().out
    assert main(["masks", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    assert "overlap ratio" in out and "ner" in out


def test_a_run_from_before_a_setting_existed_is_still_this_config(smoke_run, tmp_path, capsys):
    """A key added to sparseshare later (train.bucket) is absent from older runs' config.yaml: at its
    default it changes nothing, so the finished run is shown; set to anything else, it is another config."""
    old = tmp_path / "old"
    shutil.copytree(smoke_run, old)
    text = (old / "config.yaml").read_text()
    assert "  bucket: 0\n" in text
    (old / "config.yaml").write_text(text.replace("  bucket: 0\n", ""))
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(old)]) == 0
    out, err = capsys.readouterr()
    assert "finished" in err and "| Sparse sharing |" in out
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(old), "--set", "train.bucket=4"]) == 2
    assert "different config (train.bucket)" in capsys.readouterr().err


def _no_training_data(monkeypatch):
    """Reading any corpus, embedding or data source fails: what runs next uses the run directory alone."""

    def refuse(*a, **k):
        raise AssertionError("training data was read")

    for target in (
        "sparseshare.data.readers.conll2003_tasks",
        "sparseshare.data.embeddings.load_glove",
        "sparseshare.data.sources.resolve",
        "sparseshare.experiments.config.datasets.read_sequence_tasks",
    ):
        monkeypatch.setattr(target, refuse)


def test_predict_tags_every_task_in_one_pass_from_the_run_alone(smoke_run, tmp_path, monkeypatch, capsys):
    f = tmp_path / "in.txt"
    f.write_text("EU NNP\nrejects VBZ\nGerman JJ\n\nPeter NNP\nBlackburn NNP\n")
    out = tmp_path / "out.txt"
    _no_training_data(monkeypatch)
    assert main(["predict", str(smoke_run), str(f), "-o", str(out)]) == 0
    assert "tagged 2 sentences for pos, chunk, ner with sparse" in capsys.readouterr().err
    rows = [line.split() for line in out.read_text().splitlines() if line]
    assert len(rows) == 5 and all(len(r) == 5 for r in rows)  # word, given tag, pos, chunk, ner
    pos_tags = set(json.loads((smoke_run / "preprocess.json").read_text())["tasks"]["pos"]["tags"])
    assert all(r[2] in pos_tags for r in rows)
    assert all(r[3] == "O" or r[3][:2] in ("B-", "I-") for r in rows)  # chunk: BIO2
    assert all(r[4] == "O" or r[4][:2] in ("B-", "I-", "E-", "S-") for r in rows)  # NER: BIOES
    assert main(["predict", str(smoke_run), str(f), "--task", "ner", "--system", "hard", "-o", str(out)]) == 0
    assert all(len(line.split()) == 3 for line in out.read_text().splitlines() if line)
    assert main(["predict", str(smoke_run), str(f), "--system", "pbfs"]) == 2
    assert "system 'pbfs' has not finished" in capsys.readouterr().err


def test_predict_names_its_columns_as_a_columns_corpus_reads_them(smoke_run, tmp_path, capsys):
    """The tagged file stays plain columns (no header line: a column file takes '#' for a token); the
    summary on stderr names each column by its 0-based index, and the file reads back by those."""
    import re

    from sparseshare.data.conll import read_columns
    from sparseshare.data.readers import column_file

    f, out = tmp_path / "in.txt", tmp_path / "out.txt"
    f.write_text("EU\nrejects\nGerman\n\nPeter\nBlackburn\n")
    assert main(["predict", str(smoke_run), str(f), "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("with sparse; columns: 0 word, 1 pos, 2 chunk (bio2), 3 ner (bioes)")
    index = {name: int(i) for i, name in re.findall(r"(\d+) (\w+)", err.split("columns: ")[1])}
    assert index == {"word": 0, "pos": 1, "chunk": 2, "ner": 3}
    rows = [row for sent in read_columns(out) for row in sent]  # what predict itself reads
    assert [r[index["word"]] for r in rows] == ["EU", "rejects", "German", "Peter", "Blackburn"]
    tags = json.loads((smoke_run / "preprocess.json").read_text())["tasks"]
    for t in ("pos", "chunk", "ner"):
        assert {r[index[t]] for r in rows} <= set(tags[t]["tags"])
    pos = column_file(out, index["word"], {"pos": index["pos"]})["pos"]  # a 'columns' corpus file
    assert [tag for _, ts in pos for tag in ts] == [r[index["pos"]] for r in rows]
    # fed back in, the input's columns stay ahead of the new ones, and the summary says so
    again = tmp_path / "again.txt"
    assert main(["predict", str(smoke_run), str(out), "--task", "pos", "-o", str(again)]) == 0
    assert capsys.readouterr().err.strip().endswith("columns: 0 word, 1-3 as in the input, 4 pos")
    assert [r[4] for sent in read_columns(again) for r in sent] == [r[1] for r in rows]  # the same tagger
    # on stdout, the rows alone
    assert main(["predict", str(smoke_run), str(f), "--task", "ner"]) == 0
    printed, err = capsys.readouterr()
    assert [len(line.split()) for line in printed.splitlines() if line] == [2] * 5
    assert err.strip().endswith("columns: 0 word, 1 ner (bioes)")


def _weight_bytes(path: Path) -> int:
    """The bytes of an exported file's weights (the run's vocabularies and the header ride along: with
    the smoke run's tiny tagger they outweigh what a subnet at density 0.5 saves)."""
    tensors, _ = load_tensors(path)
    return sum(v.numel() * v.element_size() for k, v in tensors.items() if k != "__preprocess__")


@pytest.mark.parametrize("system", ["sparse", "hard", "single"])
def test_exported_subnets_reproduce_the_runs_predictions(smoke_run, tmp_path, system):
    sizes = export_reproduces_the_run(smoke_run, system, tmp_path)
    masks = json.loads((smoke_run / "results.json").read_text())["masks"]
    for t, size in sizes.items():
        if system == "sparse":  # kept values and a bit per masked weight: smaller than dense
            assert 0 < size["density"] < 1
            assert _weight_bytes(tmp_path / f"{t}.safetensors") < size["dense_bytes"]
            assert size["density"] == pytest.approx(masks[t]["density"], abs=1e-9)
        else:
            assert size["density"] == 1.0 and size["bytes"] >= size["dense_bytes"]


def test_export_cli_prints_size_beside_dense_size(smoke_run, tmp_path, capsys):
    out = tmp_path / "ner.safetensors"
    assert main(["export", str(smoke_run), "--task", "ner", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: ") and "(dense " in line and "masked weights kept" in line
    assert main(["export", str(smoke_run), "--task", "srl"]) == 2
    assert "no task(s) ['srl']" in capsys.readouterr().err


class _Evil:
    def __reduce__(self):
        return (Path.touch, (MARKER,))


MARKER = Path("/tmp/sparseshare-pickle-was-executed")


def _plant(path: Path) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weights": _Evil()}))


def test_a_planted_pickle_is_never_executed(smoke_run, tmp_path, capsys):
    import shutil

    MARKER.unlink(missing_ok=True)
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    for d in [run / "search", *(run / "systems").rglob("*")]:
        if d.is_dir():
            for name in ("best.pt", "last.pt", "warmup.pt", "model.pkl"):
                _plant(d / name)  # the names older versions read with torch.load
    f = tmp_path / "in.txt"
    f.write_text("EU NNP\n\n")
    for argv in (["report", str(run)], ["masks", str(run)], ["predict", str(run), str(f)],
                 ["export", str(run), "--task", "pos", "-o", str(tmp_path / "x.safetensors")]):  # fmt: skip
        assert main(argv) == 0, argv
    # the real checkpoints replaced by pickles: a damaged file, one line, nothing executed
    _plant(run / "systems" / "sparse" / "best.safetensors")
    assert main(["predict", str(run), str(f)]) == 2
    assert "damaged checkpoint" in capsys.readouterr().err
    (run / "results.json").unlink()
    (run / "systems" / "sparse" / "result.json").unlink()
    _plant(run / "systems" / "sparse" / "last.safetensors")
    _plant(run / "search" / "warmup.safetensors")
    assert main(["run", str(ROOT / "configs/smoke.yaml"), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # before any work, one line per damaged file
    assert len(err) == 3 and all(" damaged (" in line and "--repair" in line for line in err)
    assert not MARKER.exists()


def test_no_unsafe_loading_in_the_source():
    src = ROOT / "src" / "sparseshare"
    for path in src.rglob("*.py"):
        text = path.read_text()
        for bad in ("weights_only=False", "torch.load(", "pickle.load", "import pickle"):
            assert bad not in text, f"{path}: {bad}"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_malformed_data_file_stops_with_one_line(tmp_path, capsys, jobs):
    d = tmp_path / "data"
    d.mkdir()
    good = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
    (d / "train.txt").write_text(good + "Peter NNP B-NP\n")
    (d / "valid.txt").write_text(good)
    (d / "test.txt").write_text(good)
    out = tmp_path / "run"
    argv = ["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out), "--set", f"data.data_dir={d}"]
    assert main([*argv, "--jobs", jobs]) == 2  # with --jobs, raised in a worker, reported the same
    err = capsys.readouterr().err.strip()
    assert err == f"sparseshare: error: {d / 'train.txt'}:4: expected 4 columns, found 3"
    assert not (out / "results.json").exists()


def test_the_controls_train_random_masks_and_reinitialised_weights(smoke_run, tmp_path):
    """sparse_random: masks with the IMP masks' kept count in every matrix, other entries; sparse_reinit:
    the IMP masks over fresh weights. Both train as sparse sharing does (weights outside stay put)."""
    out = tmp_path / "controls"
    shutil.copytree(smoke_run / "search", out / "search")  # the same search, read back
    argv = ["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out)]
    assert main([*argv, "--set", "systems=[sparse_random, sparse_reinit]"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["systems"]) == {"sparse_random", "sparse_reinit"}
    imp = load_masks(smoke_run / "masks.safetensors")
    warm = load_tensors(smoke_run / "search" / "warmup.safetensors")[0]
    for name in ("sparse_random", "sparse_reinit"):
        best = load_tensors(out / "systems" / name / "best.safetensors")[0]
        union = {}
        for t, mask in imp.items():
            for n, m in mask.items():
                got = best[f"mask:{t}:{n.replace('.', '/')}"]
                assert int(got.sum()) == int(m.sum())  # the same count kept, matrix by matrix
                assert torch.equal(got, m) == (name == "sparse_reinit"), f"{name} {t} {n}"
                union[n] = union.get(n, torch.zeros_like(got)) | got
        for n, u in union.items():  # never trained outside every mask: the starting weights
            start = best[f"model.{n}"][~u]
            assert torch.equal(start, warm[n][~u]) == (name == "sparse_random"), f"{name} {n}"
    assert "Sparse sharing, random masks (control)" in (out / "results.md").read_text()


def test_the_permuted_control_keeps_the_sharing_and_moves_the_positions(smoke_run, tmp_path):
    """sparse_permuted: every task's IMP mask under one permutation per matrix, the same for all tasks:
    each task's count, every overlap and the union are the IMP masks', the positions are not; trained
    from θ^(w) as sparse sharing is. sparse_random (drawn per task) keeps only the counts."""
    from sparseshare.masks.mask import overlap_ratio

    out = tmp_path / "controls"
    shutil.copytree(smoke_run / "search", out / "search")
    argv = ["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out)]
    assert main([*argv, "--set", "systems=[sparse_permuted, sparse_random]"]) == 0
    imp = load_masks(smoke_run / "masks.safetensors")
    got = {}
    for name in ("sparse_permuted", "sparse_random"):
        best = load_tensors(out / "systems" / name / "best.safetensors")[0]
        got[name] = {t: {n: best[f"mask:{t}:{n.replace('.', '/')}"] for n in m} for t, m in imp.items()}
    perm, tasks = got["sparse_permuted"], list(imp)
    for n in imp[tasks[0]]:
        for t in tasks:
            assert int(perm[t][n].sum()) == int(imp[t][n].sum()) and not torch.equal(perm[t][n], imp[t][n])
        for a in tasks:
            for b in tasks:  # every pairwise overlap, matrix by matrix
                assert int((perm[a][n] & perm[b][n]).sum()) == int((imp[a][n] & imp[b][n]).sum())
    for a in tasks:
        for b in tasks:
            if a < b:
                pair = overlap_ratio([perm[a], perm[b]])
                assert pair == pytest.approx(overlap_ratio([imp[a], imp[b]]), abs=1e-12)
    assert overlap_ratio(list(perm.values())) == pytest.approx(overlap_ratio(list(imp.values())), abs=1e-12)
    # the per-task random draw keeps the counts but not the sharing: its overlap falls towards chance
    assert overlap_ratio(list(got["sparse_random"].values())) < overlap_ratio(list(imp.values()))


def test_single_warm_is_the_dense_single_task_from_the_warmup(smoke_run, tmp_path):
    """single_warm: each task alone, no mask, from θ^(w), on the task's own stream (the stream of
    single_subnet for that task): against single_subnet only the mask differs."""
    from sparseshare.training.streams import task_seed

    out = tmp_path / "warm"
    shutil.copytree(smoke_run / "search", out / "search")
    argv = ["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out)]
    assert main([*argv, "--set", "systems=[single_warm]"]) == 0
    res = json.loads((out / "results.json").read_text())["systems"]["single_warm"]
    ref = json.loads((smoke_run / "results.json").read_text())["systems"]
    assert res["training"]["start_epochs"] == 1  # smoke.yaml: one warmup epoch
    for t, run in res["training"]["runs"].items():
        assert run["seed"] == task_seed(1, t) != task_seed(1, "x")
        if "single_subnet" in ref:
            assert run["seed"] == ref["single_subnet"]["training"]["runs"][t]["seed"]
    assert {r["seed"] for r in ref["hard"]["training"]["runs"].values()} == {1}  # joint: the run's seed
    warm = load_tensors(smoke_run / "search" / "warmup.safetensors")[0]
    for t in res["tasks"]:  # no mask: every weight may move; the other tasks' heads never do
        best = load_tensors(out / "systems" / "single_warm" / t / "best.safetensors")[0]
        assert not any(k.startswith("mask:") for k in best)
        others = [k for k in best if k.startswith("heads.") and not k.startswith(f"heads.{t}.")]
        assert others and all(torch.equal(best[k], warm[k]) for k in others)
        moved = [k for k in best if k.startswith("encoder.") and not torch.equal(best[k], warm[k])]
        assert moved


def test_the_report_flags_unconverged_systems_and_compares_at_equal_total_epochs(smoke_run):
    res = json.loads((smoke_run / "results.json").read_text())
    single = res["systems"]["single"]["training"]
    assert single["start_epochs"] == 0 and set(single["runs"]) == {"pos", "chunk", "ner"}
    sparse = res["systems"]["sparse"]["training"]
    assert sparse["start_epochs"] == 1  # the warmup's epoch (configs/smoke.yaml)
    run = sparse["runs"]["sparse"]
    assert run["cap"] == 2 and len(run["dev_mean"]) == run["epochs"] and 1 <= run["best_epoch"] <= 2
    assert res["systems"]["sparse"]["search"]["pos"]["budget"] == 1
    md = (smoke_run / "results.md").read_text()
    assert "Training (wall time; best-dev epoch / epochs run, of the cap" in md
    hard = res["systems"]["hard"]["training"]["runs"]["hard"]
    line = next(x for x in md.splitlines() if x.startswith("- Hard sharing ("))
    assert line.startswith(f"- Hard sharing ({duration(res['systems']['hard']['seconds'])}): ")  # wall time
    assert line.endswith(" †") == (hard["best_epoch"] == hard["epochs"])
    # columns: the budgets given, 2 epochs (from scratch) and 1 + 2 (sparse sharing after the warmup)
    row = next(x for x in md.splitlines() if x.startswith("| Sparse sharing | 1 |")).strip("| ").split(" | ")
    assert row[2:] == [f"{100 * run['dev_mean'][0]:.2f}", f"{100 * max(run['dev_mean']):.2f}"]
    row = next(x for x in md.splitlines() if x.startswith("| Single task | 0 |")).strip("| ").split(" | ")
    assert row[3] == "-"  # single task stopped at its cap of 2 epochs
    assert "(budget 1 per level)" in md


def test_a_matched_budget_goes_on_from_its_base_system_to_the_from_scratch_numbers(smoke_run, tmp_path):
    """hard_matched: hard sharing with the warmup's epoch more; it continues hard's checkpoints, and
    equals a hard_matched trained on its own from scratch."""
    cont, scratch = tmp_path / "cont", tmp_path / "scratch"
    shutil.copytree(smoke_run / "systems" / "hard", cont / "systems" / "hard")
    argv = ["run", str(ROOT / "configs/smoke.yaml")]  # hard's config: its checkpoints' fingerprint
    assert main([*argv, "--out", str(cont), "--set", "systems=[hard, hard_matched]"]) == 0
    assert main([*argv, "--out", str(scratch), "--set", "systems=[hard_matched]"]) == 0
    a, b = (json.loads((d / "results.json").read_text())["systems"] for d in (cont, scratch))
    run = a["hard_matched"]["training"]["runs"]["hard_matched"]
    assert run["epochs"] == run["cap"] == 3
    assert a["hard_matched"]["budget"] == {"epochs": 3, "extra_epochs": 1}
    assert run["dev_mean"][:2] == a["hard"]["training"]["runs"]["hard"]["dev_mean"]
    assert run["dev_mean"] == b["hard_matched"]["training"]["runs"]["hard_matched"]["dev_mean"]
    assert a["hard_matched"]["tasks"] == b["hard_matched"]["tasks"]
    assert "Hard sharing, matched budget" in (cont / "results.md").read_text()


def test_report_reads_the_training_of_a_run_from_before_summaries(smoke_run, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(smoke_run, old)
    res = json.loads((old / "results.json").read_text())
    for sys in res["systems"].values():
        del sys["training"]
    (old / "results.json").write_text(json.dumps(res))
    (old / "results.md").unlink()
    assert main(["report", str(old)]) == 0
    assert (old / "results.md").read_text() == (smoke_run / "results.md").read_text()
    assert "training" not in json.loads((old / "results.json").read_text())["systems"]["hard"]


@pytest.mark.skipif(not pinned.pinned_here(), reason=f"numbers pinned under torch/machine {pinned.PINNED_ON}")
def test_the_smoke_run_reproduces_its_pinned_numbers(smoke_run):
    """A refactor changes no result: every score, curve, search level and mask statistic of the smoke
    run equals the pinned one, integers and seeds exactly, floats to the CPU kernels' noise
    (tests/experiments/pinned.py says why, and how to re-pin on purpose)."""
    got = pinned.numbers(json.loads((smoke_run / "results.json").read_text()))
    assert pinned.mismatches(got, pinned.expected("smoke")) == []
