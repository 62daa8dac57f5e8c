"""What a reference to code of the user's own looks like: ``package.module:factory`` (a config's
``tabular.expert``). Checked as a name, importing nothing (no torch either: a config is validated
without a model's code); ``sharing/expert_code.py`` imports what a trusted reference names."""

from __future__ import annotations

import re
from typing import Any

_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def reference_problem(ref: Any) -> str | None:
    """Why ``ref`` is not a factory reference ``package.module:factory``; None when it is one."""
    if not isinstance(ref, str) or len(ref) > 200 or not _REFERENCE.fullmatch(ref):
        return f"{ref!r:.80} is not a reference 'package.module:factory' (a module path, ':', a name)"
    return None
