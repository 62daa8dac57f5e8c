"""Packaging: the setuptools floor in pyproject.toml really builds the wheel, which ships the configs."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs tomllib (Python 3.11+)")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "sparseshare" / "configs"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _setuptools_floor() -> str:
    """The X of ``setuptools>=X`` in ``[build-system] requires``, the one form this file understands."""
    requires = _pyproject()["build-system"]["requires"]
    floors = [m[1] for r in requires if (m := re.fullmatch(r"setuptools\s*>=\s*([0-9.]+)", r.strip()))]
    assert len(floors) == 1, f"expected exactly one 'setuptools>=X' in build-system.requires, got {requires}"
    return floors[0]


def test_license_expression_has_a_setuptools_floor_that_reads_it():
    # A PEP 639 license string (license = "MIT") is rejected by setuptools < 77 (a table is the old form).
    if isinstance(_pyproject()["project"].get("license"), str):
        assert Version(_setuptools_floor()) >= Version("77")


def _oldest_release_from(python: Path, floor: str) -> str:
    """The oldest setuptools release the configured index offers at or above ``floor``."""
    out = subprocess.run(
        [python, "-m", "pip", "index", "versions", "setuptools"], capture_output=True, text=True, check=True
    ).stdout
    listed = re.search(r"^Available versions: (.+)$", out, re.MULTILINE)
    assert listed, out
    versions = [Version(v) for v in listed[1].split(", ")]
    return str(min(v for v in versions if v >= Version(floor)))


@pytest.mark.slow
def test_wheel_builds_with_the_setuptools_floor_and_ships_the_configs(tmp_path):
    floor = _setuptools_floor()
    subprocess.run([sys.executable, "-m", "venv", tmp_path / "venv"], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    oldest = _oldest_release_from(python, floor)
    # Only what build-system.requires names (setuptools builds wheels itself since 70.1); --no-deps and
    # --no-build-isolation keep pip from resolving anything else, torch above all.
    subprocess.run([python, "-m", "pip", "install", "-q", f"setuptools=={oldest}"], check=True)
    installed = subprocess.run(
        [python, "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert installed == oldest

    # Build from a copy: an in-tree build leaves build/ behind, and files deleted since would linger in it.
    junk = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*_cache"
    )
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=junk)
    wheels = tmp_path / "wheels"
    build = [python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, tree]
    subprocess.run(build, check=True)

    (wheel,) = wheels.glob("sparseshare-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    shipped = {n.removeprefix("sparseshare/configs/") for n in names if n.startswith("sparseshare/configs/")}
    assert shipped == {p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml")}
    assert "quickstart.yaml" in shipped
    assert "License-Expression: MIT" in metadata.splitlines()
