"""Experts of your own named in a config: ``tabular.expert: "package.module:factory"``.

A recipe (``network.json`` in a run, the header of an exported subnet) may name the factory that built
a network's experts, ``kwargs.expert = "package.module:factory"`` (an ``ExpertFactory``:
``factory(in_dim, out_dim) -> nn.Module``). Naming is not trusting: a run directory or a subnet file can
come from anyone, and importing a module runs its code. So the name is resolved only where the caller
says how:

- training from a config imports it (:func:`import_expert`): the config is the user's own, as a script
  they run would be;
- ``predict`` and ``export`` of a run, and :func:`~sparseshare.load_subnet`, refuse in one line unless
  given the factory (``experts={"package.module:factory": factory}``) or told to import what the file
  names (``experts=import_expert``; the CLI's ``--trust-code``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sparseshare.code_reference import reference_problem
from sparseshare.errors import ConfigError

__all__ = ["EXPERT_KEY", "Experts", "import_expert", "named_expert", "reference_problem", "resolve_experts"]

EXPERT_KEY = "expert"
# what gives the factory for a reference: a mapping of references, or a function of one (import_expert)
Experts = Mapping[str, Callable] | Callable[[str], Callable]


def _import(module: str):
    """``module`` imported; one under the working directory is found as ``python -m`` finds it (the
    ``sparseshare`` script itself does not put the working directory on ``sys.path``)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        if e.name != module.split(".")[0] or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)  # after the installed packages: a file here never shadows one
        return importlib.import_module(module)


def import_expert(ref: str) -> Callable:
    """The factory ``package.module:factory`` names, imported (its module's code runs); one line when
    the module, the name or a callable is missing."""
    why = reference_problem(ref)
    if why:
        raise ConfigError(why)
    module, _, name = ref.partition(":")
    try:
        obj: Any = _import(module)
    except Exception as e:  # an import error, or the module's own code failing
        raise ConfigError(
            f"expert factory '{ref}': cannot import '{module}' ({type(e).__name__}: {e})"
        ) from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"expert factory '{ref}': '{module}' has no '{name}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"expert factory '{ref}' is a {type(obj).__name__}, not a callable")
    return obj


def named_expert(kwargs: Mapping[str, Any]) -> str | None:
    """The factory reference a recipe's kwargs name, if any."""
    ref = kwargs.get(EXPERT_KEY) if isinstance(kwargs, Mapping) else None
    return ref if isinstance(ref, str) else None


def untrusted(ref: str) -> str:
    """The one line for a recipe that names code nobody said to trust."""
    return (
        f"its experts are built by '{ref}', code the file names: give experts={{'{ref}': factory}} "
        f"(or experts=import_expert; the CLI: --trust-code) to build it"
    )


def resolve_experts(kwargs: Mapping[str, Any], experts: Experts | None) -> dict[str, Any]:
    """``kwargs`` with a named factory replaced by the callable ``experts`` gives for it."""
    out = dict(kwargs)
    ref = named_expert(out)
    if ref is None:
        return out
    why = reference_problem(ref)
    if why:
        raise ConfigError(f"'{EXPERT_KEY}': {why}")
    if experts is None:
        raise ConfigError(untrusted(ref))
    if isinstance(experts, Mapping):
        if ref not in experts:
            raise ConfigError(
                f"its experts are built by '{ref}', which experts= does not give ({sorted(experts)})"
            )
        out[EXPERT_KEY] = experts[ref]
    else:
        out[EXPERT_KEY] = experts(ref)
    return out
