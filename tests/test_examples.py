"""The example scripts in examples/ run end to end and give what they claim (each takes ~10 s on one core)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration  # the CLI on real data, Ray clusters (make test-fast leaves them out)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """examples/ is not a package: import a script by path."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tagging() -> dict:
    return load_example("transformer_tagging").main(["--epochs", "5", "--seed", "0"])


@pytest.fixture(scope="module")
def tabular() -> dict:
    return load_example("tabular_towers").main(["--epochs", "12", "--seed", "0"])


def test_tagging_accuracies_beat_chance(tagging):
    assert 0.15 < tagging["majority"]["mod5"] < 0.3 and 0.25 < tagging["majority"]["step"] < 0.45
    for system in ("sparse", "hard"):
        for task, chance in tagging["majority"].items():
            assert tagging[system][task] > chance + 0.3, (system, task)


def test_tagging_prunes_encoder_weight_matrices_only(tagging):
    pruned = tagging["pruned"]
    expected = {
        f"encoder.layers.{i}.{name}"
        for i in range(2)
        for name in (
            "self_attn.in_proj_weight",
            "self_attn.out_proj.weight",
            "linear1.weight",
            "linear2.weight",
        )
    }
    assert set(pruned) == expected
    assert not [n for n in pruned if "embed" in n or n.startswith("heads.") or "norm" in n]


def test_tagging_masks_are_sparse_and_overlap_is_consistent(tagging):
    d = tagging["density"]
    assert all(0.0 < v < 1.0 for v in d.values())
    # |M_a ∩ M_b| <= min density and |M_a ∪ M_b| >= max density bound the Overlap Ratio
    assert 0.0 <= tagging["overlap"] <= min(d.values()) / max(d.values()) + 1e-9
    assert tagging["chance_overlap"] == pytest.approx(
        d["mod5"] * d["step"] / (d["mod5"] + d["step"] - d["mod5"] * d["step"])
    )


def test_tabular_systems_learn_both_tasks(tabular):
    for system in ("pbfs", "sparse", "hard"):
        assert tabular[system]["click"] > 0.75  # AUC; chance 0.5
        assert tabular[system]["spend"] < 0.3 * tabular["baseline_mse"]  # MSE; predicting the mean: 1x


def test_tabular_pbfs_reaches_target_sparsity(tabular):
    for task, target in tabular["pbfs_target"].items():
        assert tabular["pbfs_sparsity"][task] == pytest.approx(target, abs=0.01)


def test_tabular_sparse_sharing_masks(tabular):
    assert tabular["pruned"] == ["bottom.0.weight", "bottom.2.weight"]  # never the towers or biases
    assert all(0.0 < d <= 1.0 for d in tabular["sparse_density"].values())
    assert min(tabular["sparse_density"].values()) < 1.0
    assert 0.0 <= tabular["sparse_overlap"] <= 1.0


def test_tabular_exported_subnet_predicts_exactly(tabular):
    export = tabular["export"]
    assert export["predictions_equal"]
    assert export["density"] == pytest.approx(1.0 - tabular["pbfs_target"]["click"], abs=0.01)
    assert export["kept"] == round(export["density"] * export["masked"])
    assert 0 < export["bytes"] < export["dense_bytes"]
