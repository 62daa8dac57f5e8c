"""The numbers a run must reproduce digit for digit (refactors change no result): what of results.json
depends only on the code, the data and the seed, never on the machine's clock.

Pinned under torch 2.13.0+cpu on x86_64 (the project's CI); other builds may differ in the last digits
of a float and skip. After a change that is *meant* to move numbers, write the new ones with
``python -m tests.experiments.pinned RUN_DIR NAME`` (the run of configs/NAME.yaml) and say why in the
commit.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PINNED_ON = ("2.13.0+cpu", "x86_64")


def pinned_here() -> bool:
    return (torch.__version__, platform.machine()) == PINNED_ON


def numbers(results: dict) -> dict:
    """Every system's scores (all metrics, dev and test), parameter count and dev curve; each search
    level's dev score and stream; PBFS's subnets; the masks' densities and overlaps."""
    out: dict = {"systems": {}, "masks": results.get("masks"), "overlap": results.get("overlap")}
    for name, s in results["systems"].items():
        runs = (s.get("training") or {}).get("runs") or {}
        out["systems"][name] = {
            "params": s["params"],
            "tasks": {t: v["all"] for t, v in s["tasks"].items()},
            "curves": {k: r["dev_mean"] for k, r in runs.items()},
            "search": {
                t: [[lv["density"], lv["dev"], lv["seed"]] for lv in v["levels"]]
                for t, v in (s.get("search") or {}).items()
            },
            "pbfs": s.get("pbfs"),  # each task's tested and best subnet (Algorithm 2)
        }
    return json.loads(json.dumps(out))  # tuples and keys as JSON has them


def path(name: str) -> Path:
    return HERE / f"pinned_{name}.json"


def expected(name: str) -> dict:
    return json.loads(path(name).read_text())


if __name__ == "__main__":
    run, name = Path(sys.argv[1]), sys.argv[2]
    got = numbers(json.loads((run / "results.json").read_text()))
    path(name).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path(name)}")
