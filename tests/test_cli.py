import argparse
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

import sparseshare
from sparseshare import cli, config_files
from sparseshare.cli import build_parser, main

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "sparseshare" / "configs"


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("sparseshare: error: ")
    return err


def test_unknown_config_key_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: bad\nmodel:\n  hiden: 3\n")
    err = _one_line_error(capsys, ["run", str(cfg), "--out", str(tmp_path / "r")])
    assert "bad.yaml" in err and "model.hiden" in err
    assert not (tmp_path / "r").exists()


def test_bad_override_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\n")
    err = _one_line_error(capsys, ["run", str(cfg), "--set", "train.epochs=many"])
    assert "train.epochs" in err


def test_jobs_below_one_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\n")
    err = _one_line_error(capsys, ["run", str(cfg), "--jobs", "0", "--out", str(tmp_path / "r")])
    assert "--jobs" in err and not (tmp_path / "r").exists()


def test_missing_config_and_run_dirs(tmp_path, capsys):
    assert "no such config" in _one_line_error(capsys, ["run", str(tmp_path / "none.yaml")])
    assert "results.json" in _one_line_error(capsys, ["report", str(tmp_path)])
    assert "masks.safetensors" in _one_line_error(capsys, ["masks", str(tmp_path)])


def test_finished_run_is_never_overwritten(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    err = _one_line_error(capsys, ["run", str(cfg), "--out", str(run)])
    assert "finished" in err
    assert (run / "results.json").read_text() == "{}"


def test_console_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "sparseshare.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("run", "report", "masks", "predict", "config"):
        assert cmd in out.stdout


@pytest.mark.parametrize("argv", [["predict", "nowhere", "f.txt", "--task", "ner"]])
def test_predict_on_missing_run(argv, capsys):
    assert "not a run directory" in _one_line_error(capsys, argv)


def test_version(capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"sparseshare {version('sparseshare')}\n"

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(cli, "version", not_installed)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"sparseshare {sparseshare.__version__}\n"


def _positionals_without_help(parser: argparse.ArgumentParser, prog: str = "sparseshare") -> list[str]:
    """Every positional, in every (nested) subcommand, whose help text is empty; subcommands count too."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{prog} {name}")
                missing += _positionals_without_help(sub, f"{prog} {name}")
        elif not action.option_strings and not (action.help or "").strip():
            missing.append(f"{prog} {action.metavar or action.dest}")
    return missing


def test_every_positional_has_help():
    assert _positionals_without_help(build_parser()) == []
    # the walk itself finds a positional without help, also one in a nested subcommand
    p = argparse.ArgumentParser(prog="x")
    inner = p.add_subparsers().add_parser("a", help="a").add_subparsers().add_parser("b", help="b")
    inner.add_argument("thing")
    assert _positionals_without_help(p, "x") == ["x a b thing"]


def test_config_list_shows_every_packaged_config(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    firsts = [line for line in lines if not line.startswith(" ")]  # a description wraps, indented
    names = [line.split()[0] for line in firsts]
    assert names == sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {"quickstart", "smoke"} <= set(names)
    for name, line in zip(names, firsts):
        first = (CONFIGS / f"{name}.yaml").read_text().splitlines()[0]
        head = first.lstrip("#").strip() if first.startswith("#") else ""
        assert head.startswith(line[len(name) :].strip()) or line[len(name) :].strip().startswith(head)
    assert any(line.split(None, 1)[1].startswith("What `make run` runs") for line in firsts)


@pytest.mark.parametrize("suffix", ["", ".yaml"])
def test_config_show_prints_the_exact_file(capsys, suffix):
    for path in sorted(CONFIGS.glob("*.yaml")):
        assert main(["config", "show", path.stem + suffix]) == 0
        assert capsys.readouterr().out == path.read_text()


def test_config_show_unknown_name_is_one_line(capsys):
    err = _one_line_error(capsys, ["config", "show", "x"])
    assert err.startswith("sparseshare: error: unknown config 'x'; available: ")
    assert err.split("available: ")[1].split(", ") == sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def test_run_resolves_packaged_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smoke = CONFIGS / "smoke.yaml"
    assert config_files.resolve("smoke") == smoke
    assert config_files.resolve("smoke.yaml") == smoke
    for not_a_name in ("nowhere", "sub/smoke.yaml", "./smoke"):  # unknown, or a path: left as given
        assert config_files.resolve(not_a_name) == Path(not_a_name)
    (tmp_path / "smoke.yaml").write_text("name: mine\n")  # a file of that name wins
    assert config_files.resolve("smoke.yaml") == Path("smoke.yaml")
    assert config_files.resolve("smoke") == smoke


def test_run_handler_loads_the_packaged_config(tmp_path, capsys):
    # a bad override stops the run in load_config, whose error names the file it read
    err = _one_line_error(capsys, ["run", "smoke", "--set", "model.hiden=3", "--out", str(tmp_path / "r")])
    assert f"{CONFIGS / 'smoke.yaml'}:" in err and "model.hiden" in err
    assert not (tmp_path / "r").exists()


def test_progress_is_one_line_per_epoch_and_per_imp_level_off_a_terminal(tmp_path, capsys):
    from sparseshare.cli import main

    sets = ["data.limits={train: 16, dev: 8, test: 8}", "systems=[hard, sparse]", "train.epochs=2"]
    argv = ["run", "smoke", "--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    # each line after where the run stands: "[system 1/2: hard, 0 s so far] hard: epoch 1/2 ..."
    epochs = [
        x.split("] ", 1)[1] for x in err if x.startswith("sparseshare: [system 1/2: hard") and "] " in x
    ]
    epochs = [e for e in epochs if e.startswith("hard: epoch ")]
    assert [e.split()[2] for e in epochs] == ["1/2", "2/2"] and all("dev " in e for e in epochs)
    sparse = [
        x.split("] ", 1)[1] for x in err if x.startswith("sparseshare: [system 2/2: sparse") and "] " in x
    ]
    levels = [e for e in sparse if e.startswith("IMP pos: level ")]
    assert len(levels) >= 3 and "density 1.000" in levels[0]
    assert any(e.startswith("warmup: epoch 1/1") for e in sparse)


def test_joint_training_runs_for_a_tagging_config(tmp_path):
    """`train.joint: true` over sequence tasks: one batch of every task per step, Σ_t w_t L_t."""
    import json

    from sparseshare.cli import main

    out = tmp_path / "run"
    sets = ["data.limits={train: 24, dev: 8, test: 8}", "systems=[hard, hierarchical]", "train.joint=true",
            "train.epochs=1", "train.loss_weights={pos: 1.0, chunk: 0.5, ner: 2.0}"]  # fmt: skip
    assert main(["run", "smoke", "--out", str(out)] + [a for s in sets for a in ("--set", s)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["systems"]) == {"hard", "hierarchical"}
    assert all(0 <= r["test"] <= 1 for s in res["systems"].values() for r in s["tasks"].values())


def test_help_and_config_list_read_as_plain_text(capsys):
    """--help has no raw docstring markup; every config's description is a whole sentence."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and "subnetwork of shared weights" in text
    assert main(["config", "list"]) == 0
    out = capsys.readouterr().out
    from sparseshare import config_files

    for name in config_files.names():
        summary = config_files.summary(name)
        assert summary.endswith((".", "?", ")")) or not summary, (name, summary)
        assert summary.split()[-1] in " ".join(out.split()), name  # printed whole, wrapped
    assert config_files.summary("exp1_conll03").endswith("hierarchical sharing, sparse sharing.")
