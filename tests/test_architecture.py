"""The import graph (STYLE.md): no cycles, dependencies point one way. Checked by import-linter
(`lint-imports`, contracts in pyproject.toml), which reads every import statement, in functions too."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    tool = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "3 kept, 0 broken" in report


def test_imports_made_for_type_annotations_count():
    """A circle through a TYPE_CHECKING import is a circle: the contracts see those imports too."""
    import tomllib

    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert linter["exclude_type_checking_imports"] is False
    rooms = [
        c for c in linter["contracts"] if c.get("layers", [None])[-1] == "sparseshare.experiments.config"
    ]
    assert rooms and rooms[0]["layers"] == [
        f"sparseshare.experiments.{r}" for r in ("results", "run", "systems", "config")
    ]
