"""Command line: ``sparseshare run|report|masks|predict``. User errors print one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sparseshare.errors import SparseshareError


def _cmd_run(args) -> None:
    from sparseshare.errors import ConfigError
    from sparseshare.experiments.config import load_config
    from sparseshare.experiments.report import results_table
    from sparseshare.experiments.run_dir import finished_results
    from sparseshare.experiments.runner import run_experiment

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    cfg = load_config(args.config, args.set or [])
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    results = finished_results(cfg, out)
    if results is not None:  # never rerun or overwrite a finished run: show it
        print(f"{out}: this run is finished (choose another --out to run it again)", file=sys.stderr)
    else:
        results = run_experiment(cfg, out, args.jobs)
    print(f"\n{cfg.name} -> {out}\n")
    print(results_table(results))


def _load_results(run: Path) -> dict:
    from sparseshare import paths
    from sparseshare.errors import RunError

    path = paths.results_json(run)
    if not path.exists():
        raise RunError(f"{run}: no results.json (not a finished run)")
    return json.loads(path.read_text())


def _cmd_report(args) -> None:
    from sparseshare.experiments.report import write_report

    run = Path(args.run_dir)
    print(write_report(run, _load_results(run)))


def _cmd_masks(args) -> None:
    from sparseshare import paths
    from sparseshare.errors import RunError
    from sparseshare.masks import density, load_masks, overlap_matrix, overlap_ratio

    run = Path(args.run_dir)
    if not paths.masks(run).exists():
        raise RunError(f"{run}: no masks.safetensors (did the run include the 'sparse' system?)")
    masks = load_masks(paths.masks(run))
    for t, m in masks.items():
        print(f"{t:>10}  density {100 * density(m):6.2f}%  ({sum(int(x.sum()) for x in m.values()):,} kept)")
    print(f"overlap ratio (all tasks): {overlap_ratio(list(masks.values())):.4f}")
    for k, v in overlap_matrix(masks).items():
        print(f"  {k:>20}: {v:.4f}")


def _cmd_predict(args) -> None:
    from sparseshare.experiments.predict import predict_file

    n = predict_file(
        Path(args.run_dir),
        args.task,
        Path(args.file),
        Path(args.output) if args.output else None,
        system=args.system,
    )
    print(f"tagged {n} sentences", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparseshare", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment config into a run directory")
    r.add_argument("config")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--out", help="run directory (default runs/<name>)")
    r.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train up to N systems at once in worker processes, the torch threads shared out "
        "(default 1); a run resumes with any N",
    )
    r.set_defaults(fn=_cmd_run)
    rep = sub.add_parser("report", help="print a finished run's table and redraw its figures")
    rep.add_argument("run_dir")
    rep.set_defaults(fn=_cmd_report)
    m = sub.add_parser("masks", help="densities and overlap ratios of a run's masks")
    m.add_argument("run_dir")
    m.set_defaults(fn=_cmd_masks)
    pr = sub.add_parser("predict", help="tag a CoNLL-style file with a trained system")
    pr.add_argument("run_dir")
    pr.add_argument("file")
    pr.add_argument("--task", required=True)
    pr.add_argument("--system", default=None, help="which system's checkpoint (default: sparse, else hard)")
    pr.add_argument("--output", "-o", help="output file (default: stdout)")
    pr.set_defaults(fn=_cmd_predict)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except SparseshareError as e:
        print(f"sparseshare: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sparseshare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
