"""Crafted files (issue 22, item 2): a subnet header, network.json, preprocess.json, results.json or
config.yaml from someone else is checked against its schema before use. Each case ends in one line
naming the file (RunError from ``load_subnet``; exit 2 from the CLI), with no traceback, and a recipe
with huge sizes is refused before anything is built from it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

import sparseshare as ss
from sparseshare.cli import main
from sparseshare.errors import RunError
from sparseshare.sharing import registry
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.checkpoint import load_tensors, save_tensors
from tests.helpers import random_masks

TASKS = ("pos", "ner")
KWARGS = {"n_words": 30, "n_chars": 12, "n_tags": {t: 5 for t in TASKS}, "word_dim": 6, "char_dim": 4}
KWARGS |= {"char_filters": 3, "hidden": 8, "dropout": 0.0}
RECIPE = {"network": "tagger", "kwargs": KWARGS}
SCORE = {"metric": "accuracy", "dev": 0.5, "test": 0.5}
RESULTS = {"experiment": "run", "systems": {"hard": {"params": 1000, "tasks": {t: SCORE for t in TASKS}}}}
NET = "systems/hard/network.json"
DEEP = "[" * 200_000 + "]" * 200_000


@pytest.fixture(autouse=True)
def only_meta_builds(monkeypatch):
    """The tagger builder fails when it is called to allocate memory with sizes over the toy's: a
    crafted recipe must be refused on the meta device, before it is materialised."""
    build = registry.NETWORKS["tagger"]

    @functools.wraps(build)
    def guarded(**kwargs):
        if torch.get_default_device().type != "meta":
            assert kwargs["n_words"] <= 30 and kwargs["hidden"] <= 8, "built a crafted recipe for real"
        return build(**kwargs)

    monkeypatch.setitem(registry.NETWORKS, "tagger", guarded)


@pytest.fixture(scope="module")
def subnet(tmp_path_factory) -> Path:
    """A real subnet file: task ner of a toy tagger under sparse sharing, exported with its recipe."""
    torch.manual_seed(0)
    net = registry.build_network("tagger", KWARGS)
    module = SparseSharing(net, random_masks(net, TASKS, 0.5))
    path = tmp_path_factory.mktemp("subnet") / "ner.safetensors"
    ss.export_subnet(module, "ner", path, recipe=RECIPE, preprocess={"kind": "sequence"})
    return path


def _craft(subnet: Path, tmp_path: Path, edit) -> Path:
    """A copy of ``subnet`` with ``edit(tensors, header)`` applied."""
    tensors, header = load_tensors(subnet)
    edit(tensors, header)
    out = tmp_path / "crafted.safetensors"
    save_tensors(tensors, out, header)
    return out


def _kwargs(**changes):
    def edit(tensors, header):
        header["recipe"]["kwargs"].update(changes)

    return edit


def _header(**changes):
    def edit(tensors, header):
        header.update(changes)

    return edit


def _tensor(name: str, make):
    def edit(tensors, header):
        key = next(k for k in tensors if k.startswith(name))
        tensors[key] = make(tensors[key])

    return edit


def _bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)


def _masked_shape(tensors, header):
    name = next(iter(header["masked"]))
    shape = header["masked"][name]
    header["masked"][name] = shape[1:] + shape[:1]  # as many entries, another shape


def test_the_real_subnet_loads(subnet):
    assert ss.load_subnet(subnet).task == "ner"


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_kwargs(hidden=1e9), "recipe.kwargs.hidden must be an integer, not 1000000000.0"),
        (_kwargs(hidden=10**9), "recipe.kwargs.hidden = 1000000000 is outside 0.."),
        (_kwargs(n_words=2 * 10**7), "recipe.kwargs.n_words = 20000000 is outside 0.."),
        (_kwargs(hidden=True), "recipe.kwargs.hidden must be an integer, not True"),
        (_kwargs(n_words=31), "the file stores [30, 6]"),
        (_kwargs(n_tags={"pos": 5, "ner": 5, "big": 16_000_000}), "entries the file does not store"),
        (_kwargs(n_tags=["pos", "ner"]), "recipe.kwargs.n_tags must be a mapping"),
        (_kwargs(n_tags={"ner": "5"}), "recipe.kwargs.n_tags.ner must be an integer"),
        (_kwargs(shape=3), "recipe.kwargs: unknown argument(s) ['shape']"),
        (_kwargs(embeddings=[[0.0]]), "recipe.kwargs.embeddings: [[0.0]] is not a"),
        (_header(recipe=[1, 2]), "recipe must be a mapping, not list"),
        (_header(recipe={"network": "../../x", "kwargs": {}}), "unknown network '../../x'"),
        (_header(recipe={"network": "tagger", "kwargs": []}), "recipe.kwargs must be a mapping"),
        (_header(recipe={**RECIPE, "mechanism": "../x"}), "unknown mechanism '../x'"),
        (_header(version="x"), "header 'version' is 'x', not an integer"),
        (_header(parameters="x"), "header 'parameters' is not a list of names"),
        (_header(task=["ner"]), "header 'task' is ['ner'], not a task name"),
        (_tensor("encoder.word_emb", lambda t: t.to(torch.int64)), "stored as torch.int64, not a float"),
        (_tensor("encoder.word_emb", lambda t: t[:-1]), "the file stores [29, 6]"),
        (_tensor("encoder.lstm.weight_ih_l0::bits", lambda t: t[:1]), "do not cover its shape"),
        (_tensor("encoder.lstm.weight_ih_l0::kept", lambda t: t[:-1]), "kept values, its bits keep"),
        (_masked_shape, "the file stores [4, 3, 3]"),
        (_tensor("__preprocess__", lambda t: _bytes(DEEP)), "nested 200000 levels deep"),
        (_tensor("__preprocess__", lambda t: _bytes("[]")), "a JSON list, not an object"),
    ],
)  # fmt: skip
def test_a_crafted_subnet_file_is_one_runerror(subnet, tmp_path, edit, needle):
    path = _craft(subnet, tmp_path, edit)
    with pytest.raises(RunError) as e:
        ss.load_subnet(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message


# --- a run directory of someone else, through the CLI ----------------------------------------------------


def _run(capsys, argv) -> tuple[int, list[str]]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.startswith("sparseshare: error: ")]


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run's files as `export` and `report` read them: the toy tagger's recipe and weights
    (system hard, tasks pos and ner), its preprocessing and results."""
    run = tmp_path / "run"
    system = run / "systems" / "hard"
    system.mkdir(parents=True)
    (run / "config.yaml").write_text("name: run\n")
    net = registry.build_network("tagger", KWARGS)
    save_tensors(net.state_dict(), system / "best.safetensors")
    (system / "network.json").write_text(json.dumps({**RECIPE, "system": "hard", "tasks": list(TASKS)}))
    (system / "result.json").write_text("{}")
    (run / "preprocess.json").write_text(json.dumps({"kind": "sequence", "tasks": {t: {} for t in TASKS}}))
    (run / "results.json").write_text(json.dumps(RESULTS))
    return run


def _tree(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_hand_made_run_exports(run, tmp_path, capsys):
    rc, err = _run(capsys, ["export", run, "--task", "ner", "--system", "hard", "-o", tmp_path / "n.st"])
    assert rc == 0 and not err


def _recipe(**kwargs) -> str:
    return json.dumps({**RECIPE, "kwargs": {**KWARGS, **kwargs}})


@pytest.mark.parametrize(
    ("file", "text", "needle"),
    [
        (NET, _recipe(hidden=1e9), "hidden"),
        (NET, _recipe(n_words=2 * 10**7), "n_words"),
        (NET, _recipe(n_words=31), "stores [30, 6]"),
        (NET, _recipe(foo=1), "['foo']"),
        (NET, json.dumps({**RECIPE, "network": "../../x"}), "unknown network '../../x'"),
        (NET, json.dumps({**RECIPE, "tasks": "ner"}), "'tasks' is not a list"),
        (NET, "[]", "recipe must be a mapping, not list"),
        (NET, DEEP, "damaged network recipe"),
        ("preprocess.json", "[]", "not a preprocessing file"),
        ("preprocess.json", json.dumps({"kind": "sequence", "tasks": 3}), "not a preprocessing file"),
        ("preprocess.json", DEEP, "damaged preprocessing file"),
    ],
)  # fmt: skip
def test_export_of_a_crafted_run_is_one_line(run, tmp_path, capsys, file, text, needle):
    (run / file).write_text(text)
    before = _tree(run)
    out = tmp_path / "out" / "n.safetensors"
    rc, err = _run(capsys, ["export", run, "--task", "ner", "--system", "hard", "-o", out])
    assert rc == 2 and len(err) == 1 and str(run / file) in err[0] and needle in err[0], err
    assert _tree(run) == before and not out.exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[]", "a JSON list, not a mapping"),
        (json.dumps({"experiment": "e", "systems": "x"}), "'systems' is not a mapping of names to mappings"),
        (json.dumps({"experiment": "e", "systems": {"hard": {"tasks": []}}}), "'systems.hard.tasks' is not"),
        (json.dumps({"experiment": "e", "sweep": {"points": "x"}}), "'sweep.points' is not a list"),
        (json.dumps({"systems": {}}), "'experiment' is not a name"),
        (json.dumps({**RESULTS, "systems": {"hard": {"tasks": {"ner": {}}}}}), "(KeyError: 'metric')"),
        (DEEP, "damaged results file"),
    ],
)
def test_report_of_a_crafted_results_file_is_one_line(run, capsys, text, needle):
    (run / "results.json").write_text(text)
    before = _tree(run)
    rc, err = _run(capsys, ["report", run])
    assert rc == 2 and len(err) == 1 and str(run / "results.json") in err[0] and needle in err[0], err
    assert _tree(run) == before


def test_a_deeply_nested_config_is_one_line(run, capsys):
    (run / "config.yaml").write_text(DEEP)
    before = _tree(run)
    rc, err = _run(capsys, ["run", run / "config.yaml", "--out", run])
    assert rc == 2 and len(err) == 1 and "config.yaml: nested 200000 levels deep" in err[0], err
    assert _tree(run) == before


def test_a_deeply_nested_override_is_one_line(tmp_path, capsys):
    rc, err = _run(capsys, ["run", "smoke", "--out", tmp_path / "r", "--set", f"train.lr={DEEP}"])
    assert rc == 2 and len(err) == 1 and "--set 'train.lr': nested 200000 levels deep" in err[0], err
    assert not (tmp_path / "r").exists()


def test_report_reads_a_deep_config_paper_section_as_absent(run, capsys):
    """report reads config.yaml for its comparison choices only; a crafted one is passed over."""
    (run / "config.yaml").write_text(DEEP)
    rc, err = _run(capsys, ["report", run])
    assert rc == 0 and not err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[]", "a JSON list, not a mapping"),
        (json.dumps({"experiment": "e", "systems": "x"}), "'systems' is not a mapping"),
    ],
)
def test_rerunning_a_run_with_a_crafted_results_file_is_one_line(tmp_path, capsys, text, needle):
    """`run` on a finished run shows its results.json: a crafted one is one line, the run untouched."""
    from sparseshare import config_files
    from sparseshare.experiments.run.resume import _config_text
    from sparseshare.experiments.systems.checks import load_experiment

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(_config_text(load_experiment(config_files.resolve("smoke"))))
    (run / "results.json").write_text(text)
    before = _tree(run)
    rc, err = _run(capsys, ["run", run / "config.yaml", "--out", run])
    assert rc == 2 and len(err) == 1 and str(run / "results.json") in err[0] and needle in err[0], err
    assert {p: b for p, b in _tree(run).items() if p.name != ".lock"} == before  # the run's lock aside
