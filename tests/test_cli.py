import subprocess
import sys

import pytest

from sparseshare.cli import main


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
    for cmd in ("run", "report", "masks", "predict"):
        assert cmd in out.stdout


@pytest.mark.parametrize("argv", [["predict", "nowhere", "f.txt", "--task", "ner"]])
def test_predict_on_missing_run(argv, capsys):
    assert "not a run directory" in _one_line_error(capsys, argv)
