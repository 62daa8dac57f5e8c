"""bench/gpu.py, small, on the CPU: every part runs (the packed units as spawned processes), the GPU-only
figures read n/a, and the results file holds a row per figure against its goal (no timing is checked)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration  # spawns three processes of torch: ~15 s quiet (make test-fast skips)

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "gpu.py"


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env, timeout=600
    )


def _rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")
    ]


def test_quick_on_the_cpu_prints_every_figure_and_writes_the_rows(tmp_path):
    out = tmp_path / "gpu.md"
    done = _bench("--device", "cpu", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    for what in ("GPU busy", "kernel launches per step", "copies per step"):
        assert f"{what}: n/a (cpu)" in printed
    assert re.search(r"step time, batch 10 .*: \d+\.\d\d ms", printed)
    assert re.search(r"masked/unmasked step: .* ratio \d\.\d{3}", printed)
    assert re.search(r"against batch size .*10: [\d,]+ \(1\.00x\), 20: [\d,]+ \(\d+\.\d\dx\)", printed)
    assert re.search(r"against packed units .*1: [\d,]+ \(1\.00x\), 2: [\d,]+ \(\d+\.\d\dx\)", printed)

    text = out.read_text()
    assert f"torch {torch.__version__}, CUDA none" in text
    assert re.search(r"- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "- machine: " in text and "--quick" in text
    rows = _rows(text)
    figures = {r[0]: r[1:] for r in rows if len(r) == 4}
    assert figures["step time, batch 10 (sparse sharing)"][1:] == ["<= 2.5 ms", "n/a (cpu)"]
    assert re.fullmatch(r"\d+\.\d\d ms", figures["step time, batch 10 (sparse sharing)"][0])
    assert figures["GPU busy"] == ["n/a (cpu)", ">= 50%", "n/a (cpu)"]
    for what in (
        "kernel launches per step",
        "copies per step",
        "aten operator calls per step (nested included)",
    ):
        assert figures[what][0] == "n/a (cpu)"
    value, goal, met = figures["masked/unmasked step"]
    ratio = float(value.split()[0])
    assert goal == "<= 1.05" and met == ("met" if ratio <= 1.05 else "not met")  # a CPU goal too
    assert figures["2 packed units / 1 unit"][1:] == [">= 5x (8 units)", "n/a (cpu)"]
    curves = [r for r in rows if len(r) == 3 and r[0].isdigit()]
    assert [r[0] for r in curves] == ["10", "20", "1", "2"]  # batch sizes, then packed units
    assert curves[0][2] == "1.00x" and curves[2][2] == "1.00x"
    assert all(float(r[1].replace(",", "")) > 0 for r in curves)


def test_cuda_without_a_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: --device cuda would run")
    done = _bench("--device", "cuda", "--quick")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "bench/gpu.py: --device cuda, but torch sees no CUDA device (use --device cpu)"
    ]
    assert "wrote" not in done.stdout
