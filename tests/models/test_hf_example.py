"""examples/hf_multitask.py: sparse sharing over a (tiny, random) BERT on CoNLL-2003, end to end, and its
subnets kept two ways (a mask over the shared base weights; a standalone subnet file) and reloaded."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import sparseshare as ss
from sparseshare.data.sources import MARKER, cache_root
from sparseshare.models.hf import IGNORE, hf_prunable

transformers = pytest.importorskip("transformers")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hf_multitask.py"
MATRICES = (
    "attention.self.query.weight",
    "attention.self.key.weight",
    "attention.self.value.weight",
    "attention.output.dense.weight",
    "intermediate.dense.weight",
    "output.dense.weight",
)


def load_example():
    """examples/ is not a package: import the script by path."""
    spec = importlib.util.spec_from_file_location("example_hf_multitask", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    if not (cache_root() / "conll2003" / MARKER).exists():
        pytest.skip("CoNLL-2003 not in the local cache")
    out = tmp_path_factory.mktemp("hf_multitask")
    return load_example().main(["--quick", "--seed", "0", "--out", str(out)])


# the example's helpers, on their own (no data needed)


def test_labels_go_on_each_words_first_subword():
    ex = load_example()
    # [CLS] play ##ing ball [SEP]: word 0 has two sub-words
    assert ex.align_labels([5, 7], [None, 0, 0, 1, None]) == [IGNORE, 5, IGNORE, 7, IGNORE]
    vocab = ex.word_vocab([["a", "b", "a"]], min_count=2)
    assert ex.encode(["a", "b"], vocab) == [vocab["[CLS]"], vocab["a"], vocab["[UNK]"]]


def test_span_metric_reads_sentences_from_flattened_batches():
    ex = load_example()
    tags = ["B-PER", "E-PER", "O", "S-LOC"]
    # two sentences, each led by [CLS] (-100), the first padded: flattened as the evaluator joins them
    gold = torch.tensor([IGNORE, 0, 1, IGNORE, IGNORE, 3, 2, 2])
    exact = ex.span_metric(tags)(gold.clamp(min=0), gold)
    assert exact["f1"] == 1.0
    # a span cut by a sentence boundary does not count: E-PER cannot close a B-PER of the previous one
    cut = torch.tensor([IGNORE, 2, 0, IGNORE, 1, 3, 2, 2])
    wrong = torch.tensor([IGNORE, 2, 0, IGNORE, 1, 2, 2, 2])
    assert ex.span_metric(tags)(wrong, cut)["f1"] == 0.0


def test_importing_sparseshare_and_its_hf_module_leaves_transformers_out():
    code = (
        "import sys, sparseshare as ss, sparseshare.models.hf; ss.SparseSharing; "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# the example, run quickly on a slice of CoNLL-2003


@pytest.mark.integration
def test_only_attention_and_ffn_matrices_are_masked(run):
    model = run["model"]
    expected = {f"encoder.encoder.layer.{i}.{m}" for i in range(2) for m in MATRICES}
    assert set(hf_prunable(model)) == expected
    for task, mask in run["masks"].items():
        assert set(mask) == expected, task
    params = dict(model.named_parameters())
    dense = [n for n in params if n.startswith("encoder.") and not n.endswith(MATRICES)]
    assert dense and not set(dense) & expected
    # never pruned: the standalone export stores them whole, equal to the trained weights, no zero added
    for task in run["masks"]:
        with safe_open(str(run["out"] / f"{task}.subnet.safetensors"), "pt") as f:
            keys = set(f.keys())
            for n in dense:
                assert n in keys and f"{n}::bits" not in keys, (task, n)
                assert torch.equal(f.get_tensor(n), params[n].detach()), (task, n)
        word = params["encoder.embeddings.word_embeddings.weight"]
        assert (word != 0).float().mean() > 0.99


@pytest.mark.integration
def test_densities_are_those_reported(run):
    alpha = 0.3
    for task, mask in run["masks"].items():
        found = run["found"][task]
        level = found.levels[found.select()]
        kept = sum(int(m.sum()) for m in mask.values())
        total = sum(m.numel() for m in mask.values())
        assert run["density"][task] == pytest.approx(kept / total) == pytest.approx(level.density)
        assert run["exports"][task]["density"] == pytest.approx(kept / total)
        assert (run["exports"][task]["kept"], run["exports"][task]["masked"]) == (kept, total)
        # IMP's ladder: level k keeps (1 - alpha)^k of the prunable weights (rounded per level)
        assert level.density == pytest.approx((1 - alpha) ** level.level, abs=0.01)
    assert min(run["density"].values()) < 1.0


@pytest.mark.integration
def test_mask_files_hold_bits_and_subnet_files_no_dense_masked_matrix(run):
    model = run["model"]
    base = (run["out"] / "base.safetensors").stat().st_size
    for task, mask in run["masks"].items():
        path = run["out"] / f"{task}.masks.safetensors"
        with safe_open(str(path), "pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        assert set(stored) == {f"{task}/{n}" for n in mask}
        assert all(t.dtype == torch.uint8 for t in stored.values())
        assert sum(t.numel() for t in stored.values()) == sum(math.ceil(m.numel() / 8) for m in mask.values())
        assert path.stat().st_size < base / 20  # bits, not a copy of the base weights
        # the standalone subnet: a masked matrix is its kept values plus bits, never the matrix itself
        with safe_open(str(run["out"] / f"{task}.subnet.safetensors"), "pt") as f:
            keys = set(f.keys())
            header = json.loads(f.metadata()["sparseshare"])
            for n, m in mask.items():
                assert n not in keys and {f"{n}::kept", f"{n}::bits"} <= keys
                assert f.get_tensor(f"{n}::kept").numel() == int(m.sum())
        assert header["task"] == task and sorted(header["masked"]) == sorted(mask)
        sizes = run["exports"][task]
        four = model.get_parameter(next(iter(mask))).element_size()
        bits = sum(math.ceil(m.numel() / 8) for m in mask.values())
        assert (
            sizes["parameter_bytes"]
            == sizes["dense_parameter_bytes"] - four * (sizes["masked"] - sizes["kept"]) + bits
        )
        if run["density"][task] < 0.9:
            assert sizes["bytes"] < sizes["dense_bytes"]


@pytest.mark.integration
def test_reloaded_subnets_predict_as_trained(run, tmp_path):
    assert run["equal"] == {t: True for t in run["masks"]}
    # and independently of the example: the mask file against the base weights, the subnet file alone
    from safetensors.torch import load_file

    build = run["build"]
    trained = ss.SparseSharing(run["model"], run["masks"]).eval()
    files = {t: ss.load_masks(run["out"] / f"{t}.masks.safetensors")[t] for t in run["masks"]}
    for task in run["tasks"]:
        batch = next(iter(task.data.batches("test", 64)))
        base = build()
        base.load_state_dict(load_file(str(run["out"] / "base.safetensors")))
        served = ss.SparseSharing(base, files).eval()
        sub = ss.load_subnet(run["out"] / f"{task.name}.subnet.safetensors", build=build)
        with torch.no_grad():
            want = trained.predict(batch, task.name)
            assert torch.equal(served.predict(batch, task.name), want)
            assert torch.equal(sub.predict(batch), want)
            if task.name in ("pos", "entity_share"):  # a tag per token, a real number: no tie by chance
                # the mask alone is not the model: over other (random) base weights it predicts otherwise
                other = ss.SparseSharing(build(), files).eval()
                assert not torch.equal(other.predict(batch, task.name), want)


@pytest.mark.integration
def test_tasks_learn_beyond_trivial_baselines(run):
    test, baseline = run["test"], run["baseline"]
    assert all(math.isfinite(v) for v in test.values())
    assert test["pos"] > baseline["pos"] + 0.3  # token accuracy; the commonest tag ~0.17
    assert test["ner"] > baseline["ner"] + 0.1  # span F1; "O" everywhere scores 0
    assert test["has_person"] > baseline["has_person"]  # accuracy; the commoner answer
    assert test["entity_share"] < 2 * baseline["entity_share"]  # MSE; predicting the training mean: 1x
    losses = run["losses"]
    assert len(losses) >= 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0]  # the last joint epoch against the first warmup epoch
