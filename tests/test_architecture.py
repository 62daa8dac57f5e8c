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
    assert "2 kept, 0 broken" in report
