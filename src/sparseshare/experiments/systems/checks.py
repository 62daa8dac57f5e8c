"""The checks of a config that need the registries: its systems, its units, the prunable globs.

They run right after the config loads and before anything is created, together with the schema's own
checks, so every problem is reported at once (``from_dict``'s ``checks``): use :func:`load_experiment`
(a YAML file) or :func:`experiment` (a raw mapping, a sweep's point) rather than the schema's loaders,
which know no system. They fill in what depends on the registry: a config that lists no systems runs the
dataset's default ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sparseshare.errors import ConfigError
from sparseshare.experiments.config.datasets import DATASETS
from sparseshare.experiments.config.experiment import ExperimentConfig, load_config
from sparseshare.experiments.config.schema import from_dict
from sparseshare.experiments.systems.registry import SEARCH, SYSTEMS, WARMUP, misnamed, systems_for
from sparseshare.experiments.systems.transformer import TRANSFORMER_SYSTEMS
from sparseshare.sharing.expert_code import import_expert
from sparseshare.sharing.registry import OWN_EXPERTS, build_recipe


def registry_problems(cfg: ExperimentConfig) -> list[str]:
    """One line per name the registries do not know (``systems``, ``resources.units``,
    ``paper.reference``) and per prunable glob that matches no weight of the base network."""
    out = []
    if cfg.paper.reference not in SYSTEMS:
        out.append(f"'paper.reference': unknown system '{cfg.paper.reference}'; valid: {list(SYSTEMS)}")
    if cfg.data.dataset not in DATASETS:
        return out  # reported by the schema
    valid = systems_for(cfg.data.kind)
    over_transformer = cfg.data.sequence and cfg.model.transformer is not None
    if not cfg.systems:
        cfg.systems = systems_for(cfg.data.kind, default=True)
        if over_transformer:
            cfg.systems = [s for s in cfg.systems if s in TRANSFORMER_SYSTEMS]
    bad = [s for s in cfg.systems if s not in valid]
    out += misnamed(cfg.systems, cfg.data.kind, cfg.data.dataset)
    units = [WARMUP, SEARCH, *valid]
    for name in cfg.resources.units:
        if name not in units:
            out.append(f"'resources.units.{name}': unknown unit; units are {units}")
    out += _weighting_problems(cfg)
    out += _own_expert_problems(cfg)
    if over_transformer:
        out += _transformer_problems(cfg)
    sized = not cfg.model.problems("model") and not cfg.tabular.problems("tabular")  # else reported
    if not bad and sized and any(SYSTEMS[s].needs_search for s in cfg.systems):
        out += prunable_problems(cfg)  # builds the network (on the meta device): only at sizes allowed
    return out


def _transformer_problems(cfg: ExperimentConfig) -> list[str]:
    """A transformer encoder takes the systems built from the base network alone, and no word vectors."""
    out = []
    other = [s for s in cfg.systems if s in SYSTEMS and s not in TRANSFORMER_SYSTEMS]
    if other:
        out.append(
            f"'systems': {other} need the char-CNN + BiLSTM tagger, not 'model.transformer'; "
            f"over a transformer: {list(TRANSFORMER_SYSTEMS)}"
        )
    if cfg.data.embeddings:
        out.append("'data.embeddings': a transformer encoder has word embeddings of its own; leave it unset")
    return out


def _own_expert_problems(cfg: ExperimentConfig) -> list[str]:
    """'tabular.expert' must build the experts of a listed system, and import (the config is the user's
    own code to run, as a script is)."""
    ref = cfg.tabular.expert
    if ref is None or cfg.tabular.problems("tabular"):
        return []  # unset, or reported by the schema
    if not any(s in OWN_EXPERTS for s in cfg.systems):
        return [f"'tabular.expert': builds the experts of {list(OWN_EXPERTS)}; systems lists none of them"]
    try:
        import_expert(ref)
    except ConfigError as e:
        return [f"'tabular.expert': {e}"]
    return []


def _weighting_problems(cfg: ExperimentConfig) -> list[str]:
    """A weighting that compares the tasks' gradients of one step (gradnorm, pcgrad, torchjd's) needs joint
    steps: the sparse-sharing systems sample a task per step, and so do all sequence systems unless
    ``train.joint``."""
    if not cfg.train.gradient_weighting():
        return []
    sampled = [
        s for s in cfg.systems
        if s in SYSTEMS and (SYSTEMS[s].needs_search or (cfg.data.sequence and not cfg.train.joint))
    ]  # fmt: skip
    if not sampled:
        return []
    return [
        f"'train.weighting': {cfg.train.weighting} compares the tasks' gradients of one joint step, and "
        f"system(s) {sampled} train with one task sampled per step; use uw or dwa, or leave them out"
    ]


def prunable_problems(cfg: ExperimentConfig) -> list[str]:
    """The IMP search's globs must match a weight matrix of the base network (checked on a skeleton:
    parameter names do not depend on the data)."""
    import torch

    from sparseshare.pruning.prunable import prunable_names

    tasks = cfg.data.tasks or ["t"]
    t = cfg.model.transformer
    if cfg.data.sequence and t is not None and t.pretrained is not None:
        return []  # its names are its architecture's: the search refuses globs matching none when it starts
    try:
        with torch.device("meta"):  # names and shapes only: no memory, whatever sizes the config asks
            net = _skeleton(cfg, tasks)
    except Exception:  # other problems (sizes, decoder) are reported on their own
        return []
    if prunable_names(net, cfg.search.include, cfg.search.exclude):
        return []
    weights = [n for n, p in net.named_parameters() if p.dim() >= 2]
    return [
        f"'search.include' {cfg.search.include} (minus 'search.exclude') matches no weight matrix of "
        f"the base network, which the sparse-sharing systems prune; its weight matrices: {weights}"
    ]


def _skeleton(cfg: ExperimentConfig, tasks: list[str]):
    """The base network with a vocabulary of 2 (sequence data) or one input (tables)."""
    if cfg.data.sequence and cfg.model.transformer is not None:
        from sparseshare.experiments.systems.transformer import transformer_base

        t = dataclasses.replace(cfg.model.transformer, pretrained=None)  # its names, at other sizes
        base, _ = transformer_base(t, ["<pad>", "<unk>"], 0.0, cfg.model.decoder)
        return build_recipe(
            {"network": "transformer_tagger", "kwargs": {**base, "n_tags": dict.fromkeys(tasks, 2)}}
        )
    if cfg.data.sequence:
        from sparseshare.models.tagger import build_tagger

        m = cfg.model
        return build_tagger(2, 2, dict.fromkeys(tasks, 2), m.word_dim, m.char_dim, m.char_filters,
                            m.char_width, 1, m.layers, 0.0, decoder=m.decoder)  # fmt: skip
    from sparseshare.sharing.shared_bottom import shared_bottom

    return shared_bottom(1, dict.fromkeys(tasks, "regression"), cfg.tabular.bottom, cfg.tabular.tower)


def load_experiment(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """A YAML config with its ``--set`` overrides, validated against the schema and the registries."""
    return load_config(path, overrides, checks=[registry_problems])


def experiment(raw: dict) -> ExperimentConfig:
    """A raw config mapping (a sweep's point), validated against the schema and the registries."""
    return from_dict(ExperimentConfig, raw, checks=[registry_problems])
