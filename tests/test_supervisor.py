"""The watcher of a ``--jobs`` run: a child ended outside Python (Ray's ``_Exit(1)`` when its node dies, a
signal) gets one line and exit 2; a child whose ``main`` ended in Python keeps its own code and words."""

import sys

from sparseshare import supervisor


def _watch(code: str, capfd) -> tuple[int, str]:
    rc = supervisor.watch([sys.executable, "-c", code])
    return rc, capfd.readouterr().err


def test_a_child_ended_outside_python_is_one_line_and_exit_2(capfd):
    rc, err = _watch("import os; os._exit(1)", capfd)  # what Ray's QuickExit does to its driver
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("sparseshare: error: the Ray cluster failed under the run")
    assert "run the same command again to resume" in err


def test_a_killed_child_is_named_by_its_signal(capfd):
    rc, err = _watch("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", capfd)
    assert rc == 2 and "killed by SIGKILL" in err and err.count("\n") == 1


def test_a_child_that_reported_keeps_its_code_and_says_nothing_more(capfd):
    code = "from sparseshare import supervisor as s; s.report_status('130'); raise SystemExit(130)"
    rc, err = _watch(code, capfd)
    assert rc == 130 and err == ""


def test_a_python_exception_is_its_own_traceback_not_a_ray_failure(capfd):
    code = "from sparseshare import supervisor as s\ntry:\n raise ValueError('x')\n"
    code += "except BaseException:\n s.report_status('exception'); raise"
    rc, err = _watch(code, capfd)
    assert rc == 1 and "ValueError: x" in err and "sparseshare: error" not in err


def test_only_a_watched_child_reports(monkeypatch, tmp_path):
    monkeypatch.delenv(supervisor.STATUS_ENV, raising=False)
    assert not supervisor.supervised()
    supervisor.report_status("0")  # no watcher: nothing written anywhere
    path = tmp_path / "status"
    monkeypatch.setenv(supervisor.STATUS_ENV, str(path))
    supervisor.report_status("2")
    assert supervisor.supervised() and path.read_text() == "2"
