"""Typed config objects from plain dicts, with errors that name the offending key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, get_args, get_origin

from sparseshare.errors import ConfigError


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp, key: str):
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"'{key}': null is not allowed")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"'{key}' must be a list, got {type(value).__name__}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {type(value).__name__}")
        return {_coerce(k, args[0], key): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Any or (
        isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError naming it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{full}'; valid keys here: {sorted(fields)}")
        kwargs[key] = _coerce(value, hints[key], full)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check:
        check(prefix)
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def set_key(data: dict, dotted: str, value: Any) -> None:
    """Apply one ``--set a.b=c`` override to a raw config dict."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{p}' is not a section")
    node[parts[-1]] = value
