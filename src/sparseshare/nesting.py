"""How deep a file of a run may nest: JSON and YAML parsers recurse per level, so a crafted file of
200,000 ``[`` would end in RecursionError (in the parser, or later in whatever walks the result).
``MAX_DEPTH`` levels are far more than any file sparseshare writes; deeper ones are refused before
parsing, by a scan of their brackets outside quoted strings."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_YAML_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|#[^\n]*')


def depth(text: str, strings: re.Pattern = _JSON_STRING) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, quoted strings (and YAML comments) left out."""
    raw = np.frombuffer(strings.sub("", text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(raw, (91, 123)).astype(np.int64) - np.isin(raw, (93, 125))
    return int(np.cumsum(steps).max(initial=0))


def check_depth(text: str, yaml: bool = False) -> None:
    """Raise ValueError when ``text`` nests deeper than ``MAX_DEPTH`` levels."""
    d = depth(text, _YAML_STRING if yaml else _JSON_STRING)
    if d > MAX_DEPTH:
        raise ValueError(f"nested {d} levels deep, more than the {MAX_DEPTH} sparseshare reads")


def loads(text: str) -> Any:
    """``json.loads``, refusing (ValueError) nesting deeper than ``MAX_DEPTH`` before it recurses."""
    check_depth(text)
    try:
        return json.loads(text)
    except RecursionError:  # brackets the scan could not see: still a ValueError, never a traceback
        raise ValueError(f"nested more than the {MAX_DEPTH} levels sparseshare reads") from None


def yaml_load(text: str) -> Any:
    """``yaml.safe_load``, refusing (ValueError) flow nesting deeper than ``MAX_DEPTH`` before it
    recurses, and block nesting too deep for its parser; YAML errors pass through as they are."""
    import yaml

    check_depth(text, yaml=True)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"nested more than the {MAX_DEPTH} levels sparseshare reads") from None
