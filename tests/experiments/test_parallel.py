"""experiments/parallel.py: worker processes end with the run's process."""

import os
import subprocess
import sys
import time

import pytest

CHILD = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from sparseshare.experiments.parallel import die_with_parent


def unit(flag):
    with open(flag, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(1, ctx, initializer=die_with_parent, initargs=(os.getpid(),))
    pool.submit(unit, sys.argv[1])
    while not os.path.exists(sys.argv[1]) or not open(sys.argv[1]).read():
        time.sleep(0.05)  # the worker is in its unit
    os.kill(os.getpid(), 9)  # the run is killed: no cleanup of any kind
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie awaiting its reaper is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_killed_runs_worker_does_not_run_on(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    flag = tmp_path / "worker.pid"
    proc = subprocess.run([sys.executable, str(script), str(flag)], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    worker = int(flag.read_text())
    deadline = time.time() + 10
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
