"""Damaged run directories: every artifact a resume reads is checked before any work starts.

A damaged file (truncated, garbage, not what its name says) is reported in one line naming it and what
``--repair`` does: it deletes the file and exactly what was computed from it, and the resumed run computes
those again (every unit is deterministic under its seed, so the run ends as an undamaged one would):

- ``results.json``: assembled again from the systems' results;
- ``preprocess.json``: written again when the data are read;
- a system's ``result.json``, ``network.json``, ``last.safetensors`` or ``best.safetensors``: that system
  (for per-task systems, that task) trains again; ``results.json`` goes with it;
- ``search/warmup.safetensors`` (or its ``_warmup/`` state): the warmup runs again;
- a line of ``search/<task>.jsonl`` or a level's mask file: the search of that task goes back to the last
  level whose record and masks are whole, and continues from there; the systems built on the search are
  evaluated again (their training is kept);
- ``masks.safetensors``: written again from the search (the sparse system's evaluation runs again);
- ``tracking.json`` (``--log``): removed, so the trackers are sent every record again (TensorBoard may
  then show a record twice, MLflow starts a new run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sparseshare import atomic, nesting, paths
from sparseshare.errors import RunError, SparseshareError
from sparseshare.experiments.run.resume import NEEDS_SEARCH
from sparseshare.masks.io import load_masks
from sparseshare.run_dir import read_bytes
from sparseshare.training.checkpoint import load_tensors, load_training_state
from sparseshare.training.search import mask_file


@dataclass
class Damage:
    path: Path
    fault: str
    remove: list[Path] = field(default_factory=list)  # the file and what was computed from it
    keep_lines: int | None = None  # a level log: keep its first lines (the whole levels)
    note: str = ""

    def line(self) -> str:
        rel = [str(p) for p in self.remove if p != self.path]
        also = f" (and {', '.join(rel)})" if rel else ""
        act = (
            f"keeps its first {self.keep_lines} level record(s)"
            if self.keep_lines is not None
            else "deletes it"
        )
        return f"{self.path}: damaged ({self.fault}); --repair {act}{also} and {self.note}"


def _fault(e: Exception) -> str:
    """What a reader said is wrong with a file, without the file's name and advice."""
    text = " ".join(str(e).split())
    inner = re.search(r"damaged [^(]*\((.*)\)", text)
    text = inner.group(1) if inner else text.split(": ", 1)[-1]
    return text[:160] or type(e).__name__


def _json_ok(path: Path) -> str | None:
    try:
        nesting.loads(read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RunError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def _system_units(run: Path) -> list[tuple[str, Path]]:
    """(system, folder holding checkpoints) for every system folder and per-task subfolder."""
    root = run / "systems"
    if not root.is_dir():
        return []
    out = []
    for sdir in sorted(p for p in root.iterdir() if p.is_dir()):
        out.append((sdir.name, sdir))
        out += [(sdir.name, t) for t in sorted(p for p in sdir.iterdir() if p.is_dir())]
    return out


def _search_damage(run: Path) -> list[Damage]:
    """The search's files; the systems built on it are evaluated again (their training is kept), so a
    finished run ends with its search whole again."""
    out = []
    sdir = paths.search_dir(run)
    users = [paths.system_result(run, s) for s in NEEDS_SEARCH] + [paths.results_json(run)]
    users = [p for p in users if p.exists()]
    for log in sorted(sdir.glob("*.jsonl")):
        task = log.stem
        try:
            lines = read_bytes(log, "level log").decode("utf-8", "replace").splitlines()
        except RunError:  # not a file, or too large: nothing in it is kept
            lines = []
        whole = 0
        for i, line in enumerate(lines):
            try:
                if nesting.loads(line)["level"] != i:
                    break
            except (ValueError, KeyError, TypeError):
                break
            whole = i + 1
        bad_mask = None
        for z in range(whole + 1):  # level z's mask; the next level's mask is written by the level before
            f = mask_file(sdir, task, z)
            if not f.exists():
                continue
            try:
                load_masks(f)
            except SparseshareError as e:
                bad_mask = (z, f, _fault(e))
                break
        if bad_mask is not None:
            z, f, fault = bad_mask
            keep = max(z - 1, 0)
            later = [
                mask_file(sdir, task, k) for k in range(z, whole + 2) if mask_file(sdir, task, k).exists()
            ]
            note = f"repeats the search of '{task}' from level {keep}"
            out.append(Damage(f, fault, [*later, *users], keep, note))
        elif whole < len(lines):
            fault = f"line {whole + 1} is not a whole level record"
            note = f"repeats the search of '{task}' from level {whole}"
            out.append(Damage(log, fault, users, whole, note))
    warm = paths.warmup(run)
    if warm.exists():
        try:
            load_tensors(warm)
        except SparseshareError as e:
            out.append(Damage(warm, _fault(e), [warm, *users], note="runs the warmup again"))
    for f in sorted((sdir / "_warmup").glob("*.safetensors")):
        try:
            load_tensors(f)
        except SparseshareError as e:
            out.append(Damage(f, _fault(e), [f.parent, *users], note="runs the warmup again"))
    return out


def inspect_run(run: Path) -> list[Damage]:
    """Every damaged artifact of ``run`` and its remedy (nothing is changed)."""
    run = Path(run)
    out: list[Damage] = []
    results = paths.results_json(run)
    finished = [results] if results.exists() else []
    if results.exists() and (fault := _json_ok(results)):
        out.append(Damage(results, fault, [results], note="assembles it again from the systems' results"))
    pre = paths.preprocess(run)
    if pre.exists() and (fault := _json_ok(pre)):
        out.append(Damage(pre, fault, [pre, *finished], note="writes it again when the data are read"))
    for system, folder in _system_units(run):
        top = paths.system_dir(run, system)
        result = paths.system_result(run, system)
        redo = [folder] if folder != top else [p for p in top.iterdir() if p.is_file()]
        redo += [result] + finished
        note = f"trains '{system}'" + (f" on '{folder.name}'" if folder != top else "") + " again"
        if folder == top and result.exists() and (fault := _json_ok(result)):
            out.append(Damage(result, fault, [result, *finished], note=f"evaluates '{system}' again"))
        recipe = folder / paths.RECIPE
        if recipe.exists() and (fault := _json_ok(recipe)):
            out.append(Damage(recipe, fault, list(dict.fromkeys([recipe, result, *finished])), note=note))
        for name, check in ((paths.LAST_STATE, load_training_state), (paths.BEST_STATE, load_tensors)):
            f = folder / name
            if f.exists():
                try:
                    check(f)
                except SparseshareError as e:
                    out.append(Damage(f, _fault(e), list(dict.fromkeys(redo)), note=note))
    out += _search_damage(run)
    masks = paths.masks(run)
    if masks.exists():
        try:
            load_masks(masks)
        except SparseshareError as e:
            sparse = paths.system_result(run, "sparse")
            out.append(
                Damage(masks, _fault(e), [masks, sparse, *finished], note="writes it again from the search")
            )
    return out + tracking_damage(run)


def tracking_damage(run: Path) -> list[Damage]:
    """A damaged ``tracking.json`` (``--log``), which the trackers read before the run's own check."""
    tracking = paths.tracking_state(Path(run))
    if not tracking.exists() or not (fault := _json_ok(tracking)):
        return []
    note = "sends every record to the trackers again (TensorBoard may show some twice; a new MLflow run)"
    return [Damage(tracking, fault, [tracking], note=note)]


def repair(damages: list[Damage]) -> None:
    """Apply every remedy: delete what depended on a damaged file, cut level logs to their whole levels.
    Nothing outside the run is touched: a link among them is refused before any change (atomic)."""
    for d in damages:
        for p in d.remove:
            atomic.check_no_links(p, target=False)
        if d.keep_lines is not None:
            atomic.check_no_links(_level_log(d))
    for d in damages:
        if d.keep_lines is not None:
            log = _level_log(d)
            if log.exists():
                try:
                    lines = read_bytes(log, "level log").decode("utf-8", "replace").splitlines()
                except RunError:  # not a file, or too large: nothing in it is kept
                    lines = []
                lines = lines[: d.keep_lines]
                atomic.write_text(log, "".join(line + "\n" for line in lines))
        for p in d.remove:
            atomic.remove(p)


def _level_log(d: Damage) -> Path:
    """The level log a damaged search file belongs to (the log itself, or a level's mask's task log)."""
    return d.path if d.path.suffix == ".jsonl" else d.path.parent.with_suffix(".jsonl")
