"""The README's Python section runs as written."""

import logging

from tests.helpers import readme_blocks


def test_readme_python_section_runs_as_written(tmp_path, monkeypatch, capsys, caplog):
    blocks = readme_blocks("Python API", "python")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="sparseshare"):
        exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "'parity': {'accuracy':" in out and "bytes (" in out
    summary = next(x for x in out.splitlines() if x.startswith("TrainResult("))
    assert summary.startswith("TrainResult(epochs_run=5, best_epoch=") and "tensor" not in summary
    assert "joint: holds a training run made with settings.lr = 0.2, not this call's 0.05" in out
    assert (tmp_path / "joint" / "fingerprint.json").exists()
    assert (tmp_path / "parity.safetensors").stat().st_size > 0
    found = [r.getMessage() for r in caplog.records if "task parameters (found" in r.getMessage()]
    assert found and "every task reaches 5 of 9 parameter tensors" in found[0]  # the README's line
    assert "heads.parity.weight (parity)" in found[0]
