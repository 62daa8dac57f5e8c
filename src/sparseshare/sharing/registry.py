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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sparseshare.errors import ConfigError
from sparseshare.models.mlp import PBFSNet
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing.cross_stitch import CrossStitchSharing, cross_stitch
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.hierarchical import HierarchicalSharing
from sparseshare.sharing.mmoe import mmoe
from sparseshare.sharing.pbfs import PBFS, pbfs
from sparseshare.sharing.ple import cgc, ple
from sparseshare.sharing.shared_bottom import shared_bottom
from sparseshare.sharing.sparse import SparseSharing

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

# networks a recipe can name: the tagger, the tabular mechanisms' networks, the PBFS expert network
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "tagger": build_tagger,
    "pbfs_net": PBFSNet,
    **{n: e.build for n, e in MECHANISMS.items() if e.family == "tabular" and n != "pbfs"},
}


def _entry(name: str) -> MechanismEntry:
    try:
        return MECHANISMS[name]
    except KeyError:
        raise ConfigError(f"unknown sharing mechanism '{name}'; valid: {sorted(MECHANISMS)}") from None


def build_mechanism(name: str, *args, **kwargs) -> nn.Module:
    """The named mechanism, built as its family says (see the module docstring)."""
    return _entry(name).build(*args, **kwargs)


def build_network(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    try:
        build = NETWORKS[name]
    except KeyError:
        raise ConfigError(f"unknown network '{name}'; valid: {sorted(NETWORKS)}") from None
    return build(**kwargs)


def build_recipe(recipe: Mapping[str, Any]) -> nn.Module:
    """The module a recipe describes: its network, wrapped by its mechanism (if any).

    ``sparse`` takes ``options.names`` (the masked parameters; the masks themselves are in the weights);
    ``pbfs`` wraps a ``pbfs_net``; a ``tagger``-family mechanism wraps the tagger; other networks are
    mechanisms themselves.
    """
    net = build_network(recipe["network"], recipe.get("kwargs", {}))
    mech, options = recipe.get("mechanism"), dict(recipe.get("options") or {})
    if mech is None:
        return net
    if mech == "sparse":
        return SparseSharing(net, names=options.pop("names"), **options)
    if mech == "pbfs":
        return PBFS(net, **options)
    return build_mechanism(mech, net, **options)
