"""The numbers a run must reproduce (refactors change no result): what of results.json depends only on
the code, the data and the seed, never on the machine's clock.

Pinned under torch 2.13.0+cpu on x86_64 (the project's CI); other builds skip. Integers, strings, seeds
and the structure must be equal; floats agree to ``FLOAT_TOL`` (absolute, on scores in [0, 1]), not
digit for digit: torch's CPU kernels pick their float reduction order by the processor they find
(AVX-512, AVX2, their sub-features), and CI lands on more than one kind of x86_64. Measured on the
census slice: the same code, torch, numpy and scikit-learn on two x86_64 machines differ by one pair of
a dev AUC (1.6e-5, one of 250 x 250 pairs) and in the 16th digit elsewhere; ``ATEN_CPU_CAPABILITY=default``
against AVX-512 on one machine moves AUCs by up to 8e-6. A refactor that changes a random stream, a
selection or an update moves them by 1e-3 or more.

After a change that is *meant* to move numbers, write the new ones with
``python -m tests.experiments.pinned RUN_DIR NAME`` (the run of configs/NAME.yaml) and say why in the
commit.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PINNED_ON = ("2.13.0+cpu", "x86_64")
FLOAT_TOL = 1e-4


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


def mismatches(got, want, where: str = "") -> list[str]:
    """Every place where ``got`` differs from ``want``: a missing or extra key, another length or type,
    an unequal integer or string, or floats further apart than FLOAT_TOL (NaN equals NaN)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}/{k}: missing" for k in want if k not in got]
        out += [f"{where}/{k}: not pinned" for k in got if k not in want]
        for k in want:
            if k in got:
                out += mismatches(got[k], want[k], f"{where}/{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, pinned {len(want)}"]
        return [m for i, (g, w) in enumerate(zip(got, want)) for m in mismatches(g, w, f"{where}[{i}]")]
    floats = isinstance(want, float) and isinstance(got, float) and not isinstance(got, bool)
    if floats and (math.isnan(got) and math.isnan(want) or abs(got - want) <= FLOAT_TOL):
        return []
    if not floats and type(got) is type(want) and got == want:
        return []
    return [f"{where}: got {got!r}, pinned {want!r}"]


def path(name: str) -> Path:
    return HERE / f"pinned_{name}.json"


def expected(name: str) -> dict:
    return json.loads(path(name).read_text())


if __name__ == "__main__":
    run, name = Path(sys.argv[1]), sys.argv[2]
    got = numbers(json.loads((run / "results.json").read_text()))
    path(name).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path(name)}")
