"""Command line: ``sparseshare run|report|masks|predict|export|config``; user errors: one line, exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sparseshare import config_files
from sparseshare.errors import SparseshareError
from sparseshare.fault_lines import os_line, safetensors_line

DESCRIPTION = (
    "Multi-task learning with a subnetwork of shared weights per task (sparse sharing, PBFS): run an "
    "experiment config, report it, inspect its masks, predict with it, export a task's subnet. Errors in "
    "what you give it are one line, exit status 2."
)


def _cmd_run(args) -> None:
    from sparseshare import paths, run_lock
    from sparseshare.errors import ConfigError
    from sparseshare.experiments.results.report import results_table, write_report
    from sparseshare.experiments.run.repair import tracking_damage
    from sparseshare.experiments.run.resume import finished_results
    from sparseshare.experiments.run.runner import check_damage, run_experiment
    from sparseshare.experiments.run.tracking import check, tracked
    from sparseshare.experiments.systems.checks import load_experiment

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    check(args.log or [])  # a missing package is said now, not after the run
    cfg = load_experiment(config_files.resolve(args.config), args.set or [])
    args.log = list(dict.fromkeys([*cfg.log, *(args.log or [])]))  # the config's trackers and --log's
    check(args.log, "'log':")  # the config's, said as the config's key
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    args.out = str(out)  # what an OS error that names no file is named by (_place)
    if cfg.sweep:
        from sparseshare.experiments.run.sweep import sweep_points

        sweep_points(cfg)  # every point validated before anything is created
    _creatable(out)
    # never rerun or overwrite a finished run: show it (without writing anything, not even the lock)
    finished = True
    results = None if args.repair else finished_results(cfg, out)
    if results is None:
        with run_lock.locked(out):  # a second run on this --out is refused, naming this one
            if args.repair and paths.results_json(out).exists():
                check_damage(out, repair_it=True)  # a finished run with a damaged file: repaired, shown
            results = finished_results(cfg, out)
            if results is None:
                if args.log:  # the trackers read tracking.json first: a damaged one is said (or repaired) now
                    check_damage(out, args.repair, tracking_damage(out))
                with tracked(cfg, out, args.log or []):
                    results = run_experiment(
                        cfg, out, args.jobs, args.repair, args.address, report=write_report
                    )
                finished = False
    if finished:
        print(f"{out}: this run is finished (choose another --out to run it again)", file=sys.stderr)
    print(f"\n{cfg.name} -> {out}\n")
    print(results_table(results))


def _creatable(out: Path) -> None:
    """The run directory can be made and written, checked before any data is read."""
    from sparseshare.errors import RunError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"{out}: cannot create the run directory ({e.strerror or e})") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise RunError(f"{out}: the run directory is not a writable folder")


def _load_results(run: Path) -> dict:
    from sparseshare import paths
    from sparseshare.errors import RunError
    from sparseshare.run_dir import read_json

    path = paths.results_json(run)
    if not path.exists():
        raise RunError(f"{run}: no results.json (not a finished run)")
    from sparseshare.experiments.results.report import check_results

    return check_results(read_json(path, "results file"), path)


def _cmd_report(args) -> None:
    from sparseshare.experiments.results.report import write_report
    from sparseshare.experiments.run.runner import fill_training

    run = Path(args.run_dir)
    results = fill_training(run, _load_results(run))
    if args.reference:
        results = _with_reference(run, results, args.reference)
    print(write_report(run, results))


def _with_reference(run: Path, results: dict, reference: str) -> dict:
    """``results`` comparing against ``reference`` (a system the run has), for the report only."""
    from sparseshare.errors import ConfigError

    parts = (
        [pt["systems"] for pt in results["sweep"]["points"]] if "sweep" in results else [results["systems"]]
    )
    present = list(dict.fromkeys(s for systems in parts for s in systems))
    if reference not in present:
        raise ConfigError(f"--reference: {run} has no system '{reference}'; its systems: {present}")
    return {**results, "paper": {**results.get("paper", {}), "reference": reference}}


def _cmd_masks(args) -> None:
    from sparseshare import paths
    from sparseshare.errors import RunError
    from sparseshare.experiments.results.report import overlap_text
    from sparseshare.masks import density, load_masks, overlap_matrix, overlap_ratio

    run = Path(args.run_dir)
    if not paths.masks(run).exists():
        raise RunError(f"{run}: no masks.safetensors (did the run include the 'sparse' system?)")
    masks = load_masks(paths.masks(run))
    for t, m in masks.items():
        print(f"{t:>10}  density {100 * density(m):6.2f}%  ({sum(int(x.sum()) for x in m.values()):,} kept)")
    d = {t: density(m) for t, m in masks.items()}
    print(f"overlap ratio (all tasks): {overlap_text(overlap_ratio(list(masks.values())), list(d.values()))}")
    for k, v in overlap_matrix(masks).items():
        print(f"  {k:>20}: {overlap_text(v, [d[t] for t in k.split('|')])}")
    print("chance: the OR of independent random masks of these densities; normalised: (OR - chance) / "
          "(max possible - chance)")  # fmt: skip


TRUST_CODE = (
    "import the expert factory the run's config named ('tabular.expert': package.module:factory), "
    "running that module's code; without it such a run is refused in one line"
)


def _cmd_predict(args) -> None:
    from sparseshare.experiments.results.predict import predict_run

    out = Path(args.output) if args.output else None
    text = predict_run(Path(args.run_dir), Path(args.file), out, args.system, args.task, _experts(args))
    print(text, file=sys.stderr)


def _experts(args):
    """``--trust-code``: import the expert factory a run's recipe names (its module's code runs)."""
    if not args.trust_code:
        return None
    from sparseshare.sharing.expert_code import import_expert

    return import_expert


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def _cmd_export(args) -> None:
    from sparseshare.experiments.results.predict import export_run

    out, sizes = export_run(
        Path(args.run_dir), args.task, Path(args.output) if args.output else None, args.system,
        _experts(args),
    )  # fmt: skip
    share = sizes["bytes"] / sizes["dense_bytes"] if sizes["dense_bytes"] else 1.0
    masked = (
        f"; {100 * sizes['density']:.1f}% of {sizes['masked']:,} masked weights kept"
        if sizes["masked"]
        else ""
    )
    print(f"{out}: {_kb(sizes['bytes'])} (dense {_kb(sizes['dense_bytes'])}, {100 * share:.0f}%){masked}")


def _cmd_config_list(args) -> None:
    """Each packaged config and the first sentence of its comment, wrapped to the terminal."""
    names = config_files.names()
    width = max(map(len, names), default=0)
    columns = max(60, shutil.get_terminal_size((100, 24)).columns)
    for name in names:
        text = textwrap.fill(config_files.summary(name), columns - width - 2) or ""
        lines = text.splitlines() or [""]
        print(f"{name:<{width}}  {lines[0]}".rstrip())
        for more in lines[1:]:
            print(f"{'':<{width}}  {more}")


def _cmd_config_show(args) -> None:
    print(config_files.path(args.name).read_text(), end="")


def _cmd_config_keys(args) -> None:
    from sparseshare.experiments.config.reference import undocumented
    from sparseshare.experiments.results.config_keys import markdown, text

    print(markdown() if args.markdown else text(), end="")
    missing = undocumented()
    if missing:
        print(f"sparseshare: warning: {len(missing)} config key(s) have no meaning in the schema (a comment "
              f"on the field): {', '.join(missing)}", file=sys.stderr)  # fmt: skip


def _version() -> str:
    try:
        return version("sparseshare")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        from sparseshare import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparseshare", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"sparseshare {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment config into a run directory")
    r.add_argument(
        "config",
        metavar="CONFIG",
        help="a YAML config file, or the name of a packaged config (see 'sparseshare config list')",
    )
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--out", help="run directory (default runs/<name>)")
    r.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run up to N units (the warmup, each task's IMP search, each system, a sweep's points) "
        "at once as Ray tasks, on a local Ray started for the run or the cluster at --address "
        "(default 1: in this process, without Ray); a run resumes with any N. On a local Ray, N above "
        "this machine's free cores runs one unit a core (one line says so); --set resources.cpus=1 runs "
        "N at once anyway",
    )
    r.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="with --jobs, join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)",
    )
    r.add_argument(
        "--repair",
        action="store_true",
        help="delete damaged files of the run directory (and what was computed from them) and resume; "
        "without it, a damaged file stops the run before any work, naming it",
    )
    r.add_argument(
        "--log",
        action="append",
        choices=["tensorboard", "mlflow"],
        help="also log every epoch's and IMP level's numbers as they are written to metrics.jsonl "
        "(repeatable): TensorBoard into <run>/tensorboard; MLflow at $MLFLOW_TRACKING_URI, else a file "
        "store in <run>/mlruns; a resumed run logs only what it adds",
    )
    r.set_defaults(fn=_cmd_run)
    rep = sub.add_parser("report", help="print a finished run's table and redraw its figures")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    rep.add_argument(
        "--reference",
        metavar="SYSTEM",
        help="the system Δ's paired differences are taken against (default: the config's paper.reference, "
        "single task); results.md is written with it",
    )
    rep.set_defaults(fn=_cmd_report)
    m = sub.add_parser("masks", help="densities and overlap ratios of a run's masks")
    m.add_argument("run_dir", metavar="RUN_DIR", help="a run directory whose systems include 'sparse'")
    m.set_defaults(fn=_cmd_masks)
    pr = sub.add_parser(
        "predict", help="predict new data with a finished run: every task in one pass, from the run alone"
    )
    pr.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    pr.add_argument(
        "file",
        metavar="FILE",
        help="sequence runs: a CoNLL-style file (a token per line, word first; blank lines end sentences), "
        "one predicted tag column per task is appended; tabular runs: a CSV or Parquet table with the "
        "feature columns, one pred_<task> column per task is added; the summary on stderr names each output "
        "column (sequence columns by the 0-based index 'data.columns' reads them with)",
    )
    pr.add_argument("--task", action="append", help="predict only this task (repeatable; default: all)")
    pr.add_argument("--system", default=None, help="which system (default: sparse, else pbfs, hard, single)")
    pr.add_argument("--output", "-o", help="output file (default: stdout; tables: .csv or .parquet)")
    pr.add_argument("--trust-code", action="store_true", help=TRUST_CODE)
    pr.set_defaults(fn=_cmd_predict)
    ex = sub.add_parser(
        "export", help="write one task's subnet (mask applied) and head as safetensors + a JSON header"
    )
    ex.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    ex.add_argument("--task", required=True, help="the task whose subnet to export")
    ex.add_argument("--system", default=None, help="which system (default: sparse, else pbfs, hard, single)")
    ex.add_argument("--output", "-o", help="output file (default: <run>-<system>-<task>.safetensors)")
    ex.add_argument("--trust-code", action="store_true", help=TRUST_CODE)
    ex.set_defaults(fn=_cmd_export)
    c = sub.add_parser(
        "config", help="list or print the example configs shipped with the package, or every config key"
    )
    csub = c.add_subparsers(dest="config_command", required=True)
    cl = csub.add_parser("list", help="each packaged config's name and first comment line")
    cl.set_defaults(fn=_cmd_config_list)
    cs = csub.add_parser("show", help="print a packaged config's YAML (to copy and edit)")
    cs.add_argument("name", metavar="NAME", help="a name from 'sparseshare config list' (.yaml optional)")
    cs.set_defaults(fn=_cmd_config_show)
    ck = csub.add_parser(
        "keys", help="every config key: its type, default, meaning and the systems that read it"
    )
    ck.add_argument("--markdown", action="store_true", help="as markdown: docs/config.md, exactly")
    ck.set_defaults(fn=_cmd_config_keys)
    return p


class _StderrLines(logging.Handler):
    """Log lines on whatever ``sys.stderr`` is now: warnings always, progress off a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = "warning: " if record.levelno >= logging.WARNING else ""
        print(f"sparseshare: {kind}{self.format(record)}", file=sys.stderr, flush=True)


def _log_lines() -> None:
    """Warnings (undefined metrics, data problems, repairs) always reach stderr. When stderr is not a
    terminal (nohup, Slurm, CI), so does one line per epoch and per IMP level; on a terminal the progress
    bars show it."""
    logger = logging.getLogger("sparseshare")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrLines)), None)
    if handler is None:
        handler = _StderrLines()
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if sys.stderr.isatty() else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """The command line. As a process (``argv`` None), a run with ``--jobs`` above 1 runs as a watched
    child (see :mod:`sparseshare.supervisor`): Ray can end its driver where Python cannot report it."""
    from sparseshare import supervisor

    args = build_parser().parse_args(argv)
    if argv is None and getattr(args, "jobs", 1) > 1 and not supervisor.supervised():
        return supervisor.watch([sys.executable, "-m", "sparseshare.cli", *sys.argv[1:]])
    _log_lines()
    try:
        rc = _main(args)
    except BaseException:
        supervisor.report_status("exception")
        raise
    supervisor.report_status(str(rc))
    return rc


def _place(args) -> str | None:
    """The path the command writes to, to name when an error does not say which file it was."""
    for name in ("out", "output", "run_dir"):
        if getattr(args, name, None):
            return str(getattr(args, name))
    return None


def _main(args) -> int:
    try:
        args.fn(args)
    except SparseshareError as e:  # every problem at once, one line each
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"sparseshare: error: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # the disk full, a read-only place, a folder where a file goes: one line
        print(f"sparseshare: error: {os_line(e, _place(args))}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__ != "SafetensorError":  # safetensors' failed read or write (not an OSError)
            raise
        print(f"sparseshare: error: {safetensors_line(e, _place(args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparseshare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
