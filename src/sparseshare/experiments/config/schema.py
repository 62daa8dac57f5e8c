"""Typed config objects from plain dicts; every problem is collected and reported at once, one line each.

A section is a dataclass; a field without a default is required. A section may define
``problems(where) -> list[str]`` (range and consistency checks of its own values); the top level defines
the checks across sections. A class may define ``prepare(data, prefix, errors) -> data``, applied to
its raw mapping before it is built (the top level fills in a named preset's values there). ``from_dict``
reports unknown keys, mistyped values, missing required keys and every section's problems together, as one
``ConfigError`` whose lines each name a key.

Numbers that cannot be right fail here, whatever the key: a float must be finite (``.inf`` or ``.nan``
trains on NaN losses) and an int must fit in 64 bits (a bigger one overflows torch and numpy); the
sections bound what is merely absurd (``checks.MAX_EPOCHS``, ``checks.MAX_WIDTH``). A section that was
given but could not be built is not also reported as missing by its parent's checks.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, get_args, get_origin

from sparseshare.errors import ConfigError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp, key: str, errors: list[str]):
    """``value`` as type ``tp``; a problem raises ConfigError (nested sections append to ``errors``)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        first = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, errors)
            except ConfigError as e:
                first = first or str(e)
        raise ConfigError(first or f"'{key}': null is not allowed")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {type(value).__name__}")
        return _build(tp, value, key, errors)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"'{key}' must be a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{key}[{i}]", errors) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {type(value).__name__}")
        return {
            _coerce(k, args[0], key, errors): _coerce(v, args[1], f"{key}.{k}", errors)
            for k, v in value.items()
        }
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value) if abs(value) < 2.0**1000 else math.inf
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"'{key}' must be a finite number, got {value!r}")
    if tp is int and isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ConfigError(f"'{key}' must fit in 64 bits, got a {value.bit_length()}-bit number")
    if tp is Any or (
        isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")


_INVALID = object()  # a section that could not be built (a required key missing or mistyped)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _prepared(cls, data: dict, prefix: str, errors: list[str]) -> dict:
    """``data`` as the class's ``prepare(data, prefix, errors)`` hook gives it back (the top level
    resolves presets there), else as it is."""
    prepare = getattr(cls, "prepare", None)
    return prepare(data, prefix, errors) if prepare is not None else data


def _build(cls, data: dict, prefix: str, errors: list[str]):
    hints = typing.get_type_hints(cls)
    data = _prepared(cls, data, prefix, errors)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs, broken, given_broken = {}, False, []
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            errors.append(f"unknown config key '{full}'; valid keys here: {sorted(fields)}")
            continue
        try:
            kwargs[key] = _coerce(value, hints[key], full, errors)
        except ConfigError as e:
            errors.append(str(e))
            kwargs[key] = _INVALID
        if kwargs[key] is _INVALID:  # reported; the default stands in so that other checks still run
            del kwargs[key]
            given_broken.append(full)
            broken |= _required(fields[key])
    for name, f in fields.items():
        if name not in data and _required(f):
            errors.append(f"'{prefix + '.' if prefix else ''}{name}' is required")
            broken = True
    if broken:
        return _INVALID
    obj = cls(**kwargs)
    own = getattr(obj, "problems", None)
    if own is not None:  # a broken value is reported once, as itself, not as missing as well
        errors.extend(p for p in own(prefix) if not any(p.startswith(f"'{k}'") for k in given_broken))
    return obj


def from_dict(cls, data: dict, prefix: str = "", checks: Sequence[Callable[[Any], list[str]]] = ()):
    """Build dataclass ``cls`` from ``data``; every problem (unknown keys, wrong types, missing required
    keys, values out of range) is reported in one ConfigError, a line each, naming the key. ``checks``
    run on the built object too (the checks a layer above knows, e.g. against the system registry:
    experiments/systems/checks.py), and their problems join the others in the one error."""
    errors: list[str] = []
    obj = _build(cls, data, prefix, errors)
    if obj is not _INVALID:
        for check in checks:
            errors.extend(check(obj))
    if errors:
        raise ConfigError("\n".join(dict.fromkeys(errors)))
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of a nested dict (lists and empty dicts are leaves)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def set_key(data: dict, dotted: str, value: Any) -> None:
    """Apply one ``--set a.b=c`` override to a raw config dict."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a section")
    node[parts[-1]] = value
