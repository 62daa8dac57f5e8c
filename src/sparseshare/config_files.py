"""The example configs shipped inside the package (``sparseshare/configs/*.yaml``), found by name.

They are package data, so ``sparseshare config list`` and ``sparseshare run NAME`` work from an installed
wheel as well as from a checkout (where the top-level ``configs`` is a link to the same folder).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from sparseshare.errors import ConfigError


def _folder() -> Path:
    # sparseshare is a regular package installed as files, so this Traversable is a pathlib.Path.
    return Path(str(files("sparseshare") / "configs"))


def names() -> list[str]:
    """The packaged configs' names (file stems), sorted."""
    return sorted(p.stem for p in _folder().glob("*.yaml"))


def path(name: str) -> Path:
    """The file of the packaged config ``name`` (``quickstart`` or ``quickstart.yaml``).

    An unknown name raises :class:`ConfigError` listing the available ones."""
    stem = name.removesuffix(".yaml")
    if stem not in names():
        raise ConfigError(f"unknown config {name!r}; available: {', '.join(names())}")
    return _folder() / f"{stem}.yaml"


# a sentence ends at . ? or ! before a capital letter or the end, not after "et al." or "e.g."
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)[.?!](?=\s+[A-Z(]|\s*$)")


def summary(name: str) -> str:
    """The first sentence of the config's leading ``#`` comment (over as many lines as it takes), or
    ``""`` if it has none."""
    lines = []
    for line in path(name).read_text().splitlines():
        if not line.startswith("#") or not line.lstrip("#").strip():
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = _SENTENCE_END.search(text)
    return text[: end.end()] if end else text


def resolve(arg: str) -> Path:
    """What ``sparseshare run ARG`` reads: the file ``ARG`` if it exists, else the packaged config of
    that name (a bare name, with or without ``.yaml``), else ``ARG`` unchanged (load_config names it)."""
    given = Path(arg)
    if given.is_file() or given.name != arg or arg.removesuffix(".yaml") not in names():
        return given
    return path(arg)
