"""The shape of a run's results.json, checked where it is read back (``report``, a rerun of a finished
run): the file may come from someone else, and the commands index into it."""

from __future__ import annotations

from pathlib import Path

from sparseshare.errors import RunError


def _mappings(value, where: str, path: Path) -> None:
    """``value`` is a mapping whose values are mappings (``systems``, a system's ``tasks``)."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise RunError(f"{path}: '{where}' is not a mapping of names to mappings; not a results file")


def check_shape(results, path: Path) -> dict:
    """``results`` (read from ``path``): a mapping naming its ``experiment``, with ``systems`` (or
    ``sweep.points``, each with its ``systems``) a mapping of mappings, each system's ``tasks`` a
    mapping of mappings, ``paper``, ``meta``, ``masks``, ``preset`` and ``overlap`` mappings where
    present; a file from someone else that is not is a one-line RunError naming it."""
    if not isinstance(results, dict):
        raise RunError(f"{path}: a JSON {type(results).__name__}, not a mapping; not a results file")
    if not isinstance(results.get("experiment"), str):
        raise RunError(f"{path}: 'experiment' is not a name; not a results file")
    for key in ("paper", "meta", "masks", "preset", "overlap"):
        if not isinstance(results.get(key, {}), dict):
            raise RunError(f"{path}: '{key}' is not a mapping; not a results file")
    if "sweep" in results:
        points = results["sweep"].get("points") if isinstance(results["sweep"], dict) else None
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise RunError(f"{path}: 'sweep.points' is not a list of mappings; not a results file")
        parts = [(f"sweep.points[{i}].systems", p.get("systems")) for i, p in enumerate(points)]
        if not all(isinstance(p.get("point"), str) for p in points):
            raise RunError(f"{path}: a 'sweep.points' entry has no 'point' name; not a results file")
    else:
        parts = [("systems", results.get("systems"))]
    for where, systems in parts:
        _mappings(systems, where, path)
        for name, system in systems.items():
            _mappings(system.get("tasks", {}), f"{where}.{name}.tasks", path)
    return results
