"""Progress by default (issue 21, item 5): a script that configures no logging sees a line per epoch and
per IMP level off a terminal, none with ``progress=False``; results print as short summaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sparseshare as ss
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import sparseshare as ss
from tests.training.test_pipeline import SETTINGS, TwoTaskMLP, _tasks
progress = {progress}
state = ss.warmup(TwoTaskMLP(), _tasks(), SETTINGS, epochs=1, progress=progress)
search = ss.SearchSettings(alpha=0.5, min_density=0.4, epochs_per_level=1, patience=0)
ss.search_masks(TwoTaskMLP(), _tasks(), state, search=search, settings=SETTINGS, progress=progress)
ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=2), progress=progress)
"""


def _stderr(progress: bool) -> list[str]:
    code = SCRIPT.format(root=str(ROOT), progress=progress)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stderr.splitlines()


def test_a_script_without_logging_sees_a_line_per_epoch_and_per_level():
    lines = _stderr(True)
    assert any(x.startswith("sparseshare: warmup: epoch 1/1") for x in lines), lines
    assert any(x.startswith("sparseshare: IMP even: level 0/") for x in lines), lines
    assert any(x.startswith("sparseshare: train: epoch 2/2") for x in lines), lines


def test_progress_false_silences_it():
    assert [x for x in _stderr(False) if "epoch" in x or "level" in x] == []


def test_results_print_as_summaries():
    res = ss.train_jointly(TwoTaskMLP(), _tasks(), SETTINGS.replace(epochs=2), progress=False)
    text = repr(res)
    assert text.startswith("TrainResult(epochs_run=2, best_epoch=") and "even accuracy" in text
    assert len(text) < 200 and "tensor" not in text
    state = ss.warmup(TwoTaskMLP(), _tasks(), SETTINGS, epochs=0)
    search = ss.SearchSettings(alpha=0.5, min_density=0.4, epochs_per_level=1, patience=0)
    found = ss.search_masks(TwoTaskMLP(), _tasks(), state, search=search, settings=SETTINGS, progress=False)
    text = repr(found["even"])
    assert (
        text.startswith("SearchResult(task='even', 3 levels, density 1.000 -> ") and "selected level" in text
    )
    assert len(text) < 200 and "tensor" not in text
