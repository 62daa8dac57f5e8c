"""sparseshare: multi-task learning where each task owns a pruned subnetwork of shared weights.

The public API (see docs/api.md)::

    import sparseshare as ss

    tasks = [ss.Task.from_loaders("a", train=..., dev=..., metric="accuracy"), ...]
    state = ss.warmup(model, tasks, settings, epochs=3)           # multi-task warmup: the rewind point
    found = ss.search_masks(model, tasks, state, search=ss.SearchSettings(alpha=0.2))   # IMP per task
    masks = ss.select_subnets(found)                              # best dev, ties -> sparsest
    model.load_state_dict(state)
    mech = ss.SparseSharing(model, masks)
    ss.train_jointly(mech, tasks, settings)                       # all subnets, task sampling
    ss.evaluate(mech, tasks, "test")

Names are imported on first use, so ``import sparseshare`` (and the CLI) start quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    # the pipeline (sparse-sharing paper, Algorithm 1)
    "warmup": "sparseshare.training.pipeline",
    "search_masks": "sparseshare.training.pipeline",
    "select_subnets": "sparseshare.training.pipeline",
    "train_jointly": "sparseshare.training.pipeline",
    "evaluate": "sparseshare.training.pipeline",
    "TrainSettings": "sparseshare.training.settings",
    "TrainResult": "sparseshare.training.trainer",
    "SearchSettings": "sparseshare.training.settings",
    "SearchResult": "sparseshare.training.search",
    "Level": "sparseshare.training.search",
    # loss weighting (train.weighting)
    "Weighting": "sparseshare.training.weighting",
    "UncertaintyWeighting": "sparseshare.training.weighting",
    "DWA": "sparseshare.training.weighting",
    "GradNorm": "sparseshare.training.weighting",
    "PCGrad": "sparseshare.training.weighting",
    "make_weighting": "sparseshare.training.weighting",
    # tasks and data
    "Task": "sparseshare.data.task",
    "LoaderData": "sparseshare.data.task",
    "TabularData": "sparseshare.data.tabular",
    "TabularBatch": "sparseshare.data.tabular",
    # contracts
    "MultiTaskModel": "sparseshare.contracts",
    "Mechanism": "sparseshare.contracts",
    "TaskData": "sparseshare.contracts",
    "check_model": "sparseshare.contracts",
    "check_mechanism": "sparseshare.contracts",
    "check_task_data": "sparseshare.contracts",
    # mechanisms
    "HardSharing": "sparseshare.sharing",
    "SparseSharing": "sparseshare.sharing",
    "PBFS": "sparseshare.sharing",
    "PBFSPruner": "sparseshare.training.callbacks",
    "PBFSSchedule": "sparseshare.training.callbacks",
    "MMoE": "sparseshare.sharing",
    "PLE": "sparseshare.sharing",
    "SharedBottom": "sparseshare.sharing",
    "CrossStitch": "sparseshare.sharing",
    "MECHANISMS": "sparseshare.sharing",
    "build_mechanism": "sparseshare.sharing",
    "shared_parameter_names": "sparseshare.sharing",
    "PBFSNet": "sparseshare.models.mlp",
    "TokenMMoE": "sparseshare.models.token_experts",
    "TokenPLE": "sparseshare.sharing.token_ple",
    "TokenPBFSNet": "sparseshare.models.token_experts",
    "token_pbfs": "sparseshare.sharing.pbfs",
    "WordCharEmbedding": "sparseshare.models.token_experts",
    # a pretrained transformer (sparseshare[hf]); transformers is imported only when a model is built
    "HFMultiTask": "sparseshare.models.hf",
    "hf_prunable": "sparseshare.models.hf",
    "HF_INCLUDE": "sparseshare.models.hf",
    "HF_EXCLUDE": "sparseshare.models.hf",
    # masks and pruning
    "density": "sparseshare.masks",
    "overlap_ratio": "sparseshare.masks",
    "overlap_matrix": "sparseshare.masks",
    "save_masks": "sparseshare.masks",
    "load_masks": "sparseshare.masks",
    "prunable_names": "sparseshare.pruning",
    "prune": "sparseshare.pruning",
    # export
    "export_subnet": "sparseshare.export",
    "load_subnet": "sparseshare.export",
    "Subnet": "sparseshare.export",
    "import_expert": "sparseshare.sharing.expert_code",
    # tracking: a log= callable for warmup, search_masks and train_jointly (TensorBoard, MLflow)
    "tracker": "sparseshare.tracking",
    # errors
    "SparseshareError": "sparseshare.errors",
    "ContractError": "sparseshare.errors",
    "ConfigError": "sparseshare.errors",
    "DataError": "sparseshare.errors",
    "RunError": "sparseshare.errors",
    "MetricInputError": "sparseshare.errors",
    "TrainingError": "sparseshare.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'sparseshare' has no attribute '{name}'") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from sparseshare.contracts import (
        Mechanism,
        MultiTaskModel,
        TaskData,
        check_mechanism,
        check_model,
        check_task_data,
    )
    from sparseshare.data.tabular import TabularBatch, TabularData
    from sparseshare.data.task import LoaderData, Task
    from sparseshare.errors import (
        ConfigError,
        ContractError,
        DataError,
        MetricInputError,
        RunError,
        SparseshareError,
        TrainingError,
    )
    from sparseshare.export import Subnet, export_subnet, load_subnet
    from sparseshare.masks import density, load_masks, overlap_matrix, overlap_ratio, save_masks
    from sparseshare.models.hf import HF_EXCLUDE, HF_INCLUDE, HFMultiTask, hf_prunable
    from sparseshare.models.mlp import PBFSNet
    from sparseshare.models.token_experts import TokenMMoE, TokenPBFSNet, WordCharEmbedding
    from sparseshare.pruning import prunable_names, prune
    from sparseshare.sharing import (
        MECHANISMS,
        PBFS,
        PLE,
        CrossStitch,
        HardSharing,
        MMoE,
        SharedBottom,
        SparseSharing,
        build_mechanism,
        shared_parameter_names,
    )
    from sparseshare.sharing.expert_code import import_expert
    from sparseshare.sharing.pbfs import token_pbfs
    from sparseshare.sharing.token_ple import TokenPLE
    from sparseshare.tracking import tracker
    from sparseshare.training.callbacks import PBFSPruner, PBFSSchedule
    from sparseshare.training.pipeline import evaluate, search_masks, select_subnets, train_jointly, warmup
    from sparseshare.training.search import Level, SearchResult
    from sparseshare.training.settings import SearchSettings, TrainSettings
    from sparseshare.training.trainer import TrainResult
    from sparseshare.training.weighting import (
        DWA,
        GradNorm,
        PCGrad,
        UncertaintyWeighting,
        Weighting,
        make_weighting,
    )
