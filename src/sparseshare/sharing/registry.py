"""The registries of sharing mechanisms and of the networks they are built on; unknown names list the valid.

Adding a mechanism: one file in ``sharing/`` and one entry in ``MECHANISMS``. Its family says how it is
built, and so how the one parametrized contract test (tests/sharing/test_contract.py) builds a toy one:

- ``wrapper``: ``build(model, **options)`` over any multi-task model (hard, sparse sharing);
- ``tagger``: ``build(tagger, **options)`` from the sequence tagger (``MultiTaskTagger``);
- ``tabular``: ``build(in_dim, kinds, **sizes)``, a network of its own over ``x [B, in_dim]``; its
  ``sizes`` name, per keyword of ``build``, the key of an experiment config's ``tabular`` section that
  sizes it (so a config runs it without code of its own).

A *recipe* names how to rebuild a trained system's modules without its data or code: ``{"network": name,
"kwargs": {...}, "mechanism": name or None, "options": {...}}``; ``build_recipe`` turns it back into the
module (JSON in run directories and exported subnets, never pickles).
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparseshare.errors import ConfigError
from sparseshare.models.hf_tagger import transformer_tagger
from sparseshare.models.mlp import PBFSNet
from sparseshare.models.tagger import build_tagger
from sparseshare.models.token_experts import token_mmoe_net, token_pbfs_net
from sparseshare.sharing.cross_stitch import CrossStitchSharing, cross_stitch
from sparseshare.sharing.expert_code import (
    EXPERT_KEY,
    Experts,
    named_expert,
    reference_problem,
    resolve_experts,
    untrusted,
)
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.hierarchical import HierarchicalSharing
from sparseshare.sharing.mmoe import mmoe
from sparseshare.sharing.pbfs import PBFS, pbfs
from sparseshare.sharing.ple import cgc, ple
from sparseshare.sharing.shared_bottom import shared_bottom
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.sharing.token_ple import token_ple_net

FAMILIES = ("wrapper", "tagger", "tabular")


@dataclass(frozen=True)
class MechanismEntry:
    name: str
    family: str
    build: Callable[..., nn.Module]
    summary: str
    sizes: Mapping[str, str] = field(default_factory=dict)  # build keyword -> 'tabular' config key


# CGC and PLE (and PBFS's experts): task-specific and shared experts of one size, a tower per task
_GATED = {
    "num_specific": "num_specific",
    "num_shared": "num_shared",
    "expert_hidden": "ple_expert",
    "tower": "tower",
}

MECHANISMS: dict[str, MechanismEntry] = {
    e.name: e
    for e in (
        MechanismEntry("hard", "wrapper", HardSharing, "one encoder, a head per task (Caruana 1997)"),
        MechanismEntry(
            "sparse", "wrapper", SparseSharing, "per-task masks over one network (Sun et al. 2020)"
        ),
        MechanismEntry(
            "cross_stitch_tagger", "tagger", CrossStitchSharing, "a BiLSTM per task, cross-stitch units"
        ),
        MechanismEntry("hierarchical", "tagger", HierarchicalSharing, "tasks read different BiLSTM layers"),
        MechanismEntry(
            "shared_bottom",
            "tabular",
            shared_bottom,
            "one bottom MLP, a tower per task",
            {"bottom": "bottom", "tower": "tower", "dropout": "dropout"},
        ),
        MechanismEntry(
            "cross_stitch",
            "tabular",
            cross_stitch,
            "an MLP column per task (Misra et al. 2016)",
            {"bottom": "cross_stitch", "tower": "cross_stitch_tower", "dropout": "dropout"},
        ),
        MechanismEntry(
            "mmoe",
            "tabular",
            mmoe,
            "multi-gate mixture of experts (Ma et al. 2018)",
            {"num_experts": "num_experts", "expert_hidden": "mmoe_expert", "tower": "tower"},
        ),
        MechanismEntry("cgc", "tabular", cgc, "customized gate control (Tang et al. 2020)", _GATED),
        MechanismEntry(
            "ple",
            "tabular",
            ple,
            "progressive layered extraction (Tang et al. 2020)",
            {**_GATED, "levels": "levels"},
        ),
        MechanismEntry(
            "pbfs",
            "tabular",
            pbfs,
            "pruning-based feature sharing (Entropy 2022)",
            {**_GATED, "expert_hidden": "pbfs_expert"},
        ),
    )
}

# networks a recipe can name: the tagger (over the char-CNN + BiLSTM, or over a transformer), the tabular
# mechanisms' networks, the PBFS expert network, and the gated experts per token over the tagger's words +
# char-CNN (sequence data: mmoe, cgc/ple, pbfs)
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "tagger": build_tagger,
    "transformer_tagger": transformer_tagger,
    "pbfs_net": PBFSNet,
    "token_mmoe": token_mmoe_net,
    "token_ple": token_ple_net,
    "token_pbfs_net": token_pbfs_net,
    **{n: e.build for n, e in MECHANISMS.items() if e.family == "tabular" and n != "pbfs"},
}


# the mechanisms whose experts a factory of the user's own can build (``expert=``)
OWN_EXPERTS = tuple(n for n, e in MECHANISMS.items() if EXPERT_KEY in inspect.signature(e.build).parameters)

# the networks that take pretrained word vectors (``embeddings``, given at build time, never in a recipe)
WORD_VECTOR_NETWORKS = ("tagger", "token_mmoe", "token_ple", "token_pbfs_net")


def _entry(name: str) -> MechanismEntry:
    try:
        return MECHANISMS[name]
    except KeyError:
        raise ConfigError(f"unknown sharing mechanism '{name}'; valid: {sorted(MECHANISMS)}") from None


def build_mechanism(name: str, *args, **kwargs) -> nn.Module:
    """The named mechanism, built as its family says (see the module docstring)."""
    return _entry(name).build(*args, **kwargs)


def build_network(name: str, kwargs: Mapping[str, Any], experts: Experts | None = None) -> nn.Module:
    """The named network; an expert factory ``kwargs`` names is resolved by ``experts``
    (``sharing/expert_code.py``)."""
    try:
        build = NETWORKS[name]
    except KeyError:
        raise ConfigError(f"unknown network '{name}'; valid: {sorted(NETWORKS)}") from None
    return build(**resolve_experts(kwargs, experts))


def build_recipe(recipe: Mapping[str, Any], experts: Experts | None = None) -> nn.Module:
    """The module a recipe describes: its network, wrapped by its mechanism (if any).

    ``sparse`` takes ``options.names`` (the masked parameters; the masks themselves are in the weights);
    ``pbfs`` wraps a ``pbfs_net`` or a ``token_pbfs_net``; a ``tagger``-family mechanism wraps the
    tagger; other networks are mechanisms themselves. A recipe whose experts are a factory it names
    (``kwargs.expert: "package.module:factory"``) builds only with ``experts`` saying how to get it
    (a mapping of references, or :func:`~sparseshare.sharing.expert_code.import_expert`).
    """
    net = build_network(recipe["network"], recipe.get("kwargs", {}), experts)
    mech, options = recipe.get("mechanism"), dict(recipe.get("options") or {})
    if mech is None:
        return net
    if mech == "sparse":
        return SparseSharing(net, names=options.pop("names"), **options)
    if mech == "pbfs":
        return PBFS(net, **options)
    return build_mechanism(mech, net, **options)


# --- checking a recipe read from a file before anything is built from it ----------------------------
# A recipe in a run directory or a subnet file may come from anyone: its sizes set what building it
# allocates. ``check_recipe`` refuses, as one line, what the builders' signatures do not allow (unknown
# or missing keywords, a kind the annotation does not admit, a bool for an int, a size past
# ``MAX_SIZE``), then builds the module on the meta device (no memory) and compares its shapes with the
# stored tensors', so a recipe whose sizes the file does not back is refused before anything is built.

MAX_SIZE = 2**24  # the largest int a recipe may give a builder (16.7M: a vocabulary, a layer width)
MAX_ITEMS = 10_000  # the longest list or mapping in a recipe's arguments
UNSTORED_ELEMENTS = 2**22  # entries the module may have beyond the stored ones (other tasks' heads)
RECIPE_KEYS = ("network", "kwargs", "mechanism", "options", "tasks", "system")


class RecipeError(ValueError):
    """A recipe its builders do not accept; callers turn it into a one-line error naming the file."""


class UntrustedRecipe(RecipeError):
    """A recipe naming code of its own (an expert factory) that nobody said how to get: not damage."""


def _kind_name(ann) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def _check_value(value, ann, where: str) -> None:
    """``value`` (from JSON) is one that annotation ``ann`` admits, with sizes in range."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is typing.Any or ann is inspect.Parameter.empty:
        return
    if ann is type(None) or ann is None:
        if value is not None:
            raise RecipeError(f"{where} must be null, not {type(value).__name__}")
        return
    if origin in (typing.Union, types.UnionType):
        for a in args:
            try:
                return _check_value(value, a, where)
            except RecipeError:
                continue
        raise RecipeError(f"{where}: {value!r:.60} is not a {_kind_name(ann)}")
    if ann is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, not {value!r:.40}")
    elif ann is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where} must be an integer, not {value!r:.40}")
        if not 0 <= value <= MAX_SIZE:
            raise RecipeError(f"{where} = {value} is outside 0..{MAX_SIZE}")
    elif ann is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecipeError(f"{where} must be a finite number, not {value!r:.40}")
    elif ann is str:
        if not isinstance(value, str) or len(value) > 1000:
            raise RecipeError(f"{where} must be a string (at most 1000 characters), not {value!r:.40}")
    elif origin is not None and isinstance(origin, type) and issubclass(origin, cabc.Mapping):
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise RecipeError(f"{where} must be a mapping (at most {MAX_ITEMS} entries), not {value!r:.40}")
        key, val = args or (str, typing.Any)
        for k, v in value.items():
            _check_value(k, key, f"{where} key")
            _check_value(v, val, f"{where}.{k}")
    elif origin is not None and isinstance(origin, type) and issubclass(origin, cabc.Sequence):
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise RecipeError(f"{where} must be a list (at most {MAX_ITEMS} items), not {value!r:.40}")
        item = args[0] if args else typing.Any
        for i, v in enumerate(value):
            _check_value(v, item, f"{where}[{i}]")
    else:  # a tensor, a callable, a module: nothing a JSON recipe can give
        raise RecipeError(f"{where}: a {_kind_name(ann)} cannot come from a recipe file")


def _check_kwargs(build: Callable, kwargs, where: str, skip: int = 0) -> None:
    """``kwargs`` are keyword arguments ``build`` takes, each of a kind its annotation admits, and
    every one it needs is there; ``skip``: leading positional parameters the caller passes itself;
    a parameter without an annotation takes any JSON value."""
    if not isinstance(kwargs, dict):
        raise RecipeError(f"{where} must be a mapping, not {type(kwargs).__name__}")
    target = build.__init__ if isinstance(build, type) else build
    params = list(inspect.signature(build).parameters.values())[skip:]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: check the names alone
        hints = {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        named = None
    else:
        named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(set(kwargs) - set(named))
        if unknown:
            raise RecipeError(f"{where}: unknown argument(s) {unknown}; valid: {sorted(named)}")
        missing = sorted(n for n, p in named.items() if p.default is p.empty and n not in kwargs)
        if missing:
            raise RecipeError(f"{where}: missing argument(s) {missing}")
    for k, v in kwargs.items():
        _check_value(v, hints.get(k, inspect.Parameter.empty), f"{where}.{k}")


def check_recipe(
    recipe: Any, shapes: Mapping[str, tuple[int, ...]] | None = None, experts: Experts | None = None
) -> None:
    """Raise :class:`RecipeError` unless ``recipe`` names registered builders with arguments they take,
    and, given ``shapes`` (state-dict name -> shape stored in the file), builds a module whose tensors
    have exactly those shapes, with at most ``UNSTORED_ELEMENTS`` entries beyond them. Nothing real is
    allocated: the module is built on the meta device (with a factory of the user's own, ``experts``
    says how to get it, as :func:`build_recipe` takes it; none given is refused)."""
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe must be a mapping, not {type(recipe).__name__}")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise RecipeError(f"recipe: unknown key(s) {unknown}; valid: {list(RECIPE_KEYS)}")
    name, mech = recipe.get("network"), recipe.get("mechanism")
    if not isinstance(name, str) or name not in NETWORKS:
        raise RecipeError(f"recipe.network: unknown network {name!r:.60}; valid: {sorted(NETWORKS)}")
    kwargs = recipe.get("kwargs", {})
    ref = named_expert(kwargs)
    if ref is not None:  # a factory reference where the builder takes experts: checked as a name
        if EXPERT_KEY not in inspect.signature(NETWORKS[name]).parameters:
            raise RecipeError(f"recipe.kwargs.{EXPERT_KEY}: network '{name}' takes no experts")
        why = reference_problem(ref)
        if why:
            raise RecipeError(f"recipe.kwargs.{EXPERT_KEY}: {why}")
        if shapes is not None and experts is None:
            raise UntrustedRecipe(untrusted(ref))
        kwargs = {k: v for k, v in kwargs.items() if k != EXPERT_KEY}
    _check_kwargs(NETWORKS[name], kwargs, "recipe.kwargs")
    options = recipe.get("options") or {}
    if mech is not None:
        stored = isinstance(mech, str) and mech in MECHANISMS
        if not stored or (MECHANISMS[mech].family == "tabular" and mech != "pbfs"):
            valid = sorted(n for n, e in MECHANISMS.items() if e.family != "tabular" or n == "pbfs")
            raise RecipeError(f"recipe.mechanism: unknown mechanism {mech!r:.60}; valid: {valid}")
        build = {"sparse": SparseSharing, "pbfs": PBFS}.get(mech, MECHANISMS[mech].build)
        _check_kwargs(build, options, "recipe.options", skip=1)
    elif options:
        raise RecipeError("recipe.options: options without a mechanism")
    if shapes is None:
        return
    try:
        with torch.device("meta"):
            state = build_recipe(recipe, experts).state_dict()
    except (ConfigError, TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise RecipeError(
            f"recipe does not build ({type(e).__name__}: {(str(e).splitlines() or [''])[0]:.100})"
        ) from None
    unstored = 0
    for n, v in state.items():
        if n in shapes:
            if tuple(shapes[n]) != tuple(v.shape):
                raise RecipeError(
                    f"recipe gives '{n}' the shape {list(tuple(v.shape))}, the file stores {list(shapes[n])}"
                )
        else:
            unstored += math.prod(tuple(v.shape))
    if unstored > UNSTORED_ELEMENTS + sum(math.prod(s) for s in shapes.values()):
        raise RecipeError(f"recipe builds {unstored} entries the file does not store: sizes it does not back")
