"""The README's Python section runs as written."""

from tests.helpers import readme_blocks


def test_readme_python_section_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = readme_blocks("Python API", "python")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "'parity': {'accuracy':" in out and "bytes (" in out
    assert (tmp_path / "parity.safetensors").stat().st_size > 0
