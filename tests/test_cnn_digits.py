"""examples/cnn_digits.py: sparse sharing over a CNN, global vs layer-wise IMP, per-layer density and IoU."""

from __future__ import annotations

import pytest
import torch

from tests.test_examples import load_example

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cnn() -> dict:
    return load_example("cnn_digits").main(["--quick", "--seed", "0"])


def test_masks_are_binary_and_match_reported_densities(cnn):
    for run in cnn["strategies"].values():
        for task, mask in run["masks"].items():
            assert set(mask) == {"conv1.weight", "conv2.weight", "dense.weight"}  # no biases, no heads
            assert all(m.dtype == torch.bool for m in mask.values())
            kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
            assert kept == pytest.approx(run["density"][task])
            for n, m in mask.items():
                assert run["layers"]["density"][n][task] == pytest.approx(m.float().mean().item())


def test_per_layer_iou_matches_an_independent_count(cnn):
    for run in cnn["strategies"].values():
        for n, pairs in run["layers"]["iou"].items():
            for pair, iou in pairs.items():
                a, b = (run["masks"][t][n] for t in pair.split("|"))
                assert 0.0 <= iou <= 1.0
                assert iou == pytest.approx(int((a & b).sum()) / int((a | b).sum()))


def test_layerwise_is_even_and_global_is_not(cnn):
    lw, gl = cnn["strategies"]["layerwise"], cnn["strategies"]["global"]
    for task in lw["density"]:
        per_layer = [d[task] for d in lw["layers"]["density"].values()]
        assert max(per_layer) - min(per_layer) < 0.02
    spread = max(
        max(d[t] for d in gl["layers"]["density"].values())
        - min(d[t] for d in gl["layers"]["density"].values())
        for t in gl["density"]
    )
    assert spread > 0.1


def test_every_task_beats_chance(cnn):
    for run in cnn["strategies"].values():
        for task, acc in run["test"].items():
            assert acc > cnn["chance"][task] + 0.2, task


def test_weights_outside_a_mask_do_not_change_its_predictions(cnn):
    sparse = cnn["strategies"]["global"]["mechanism"]
    task = "parity"
    batch = next(iter(cnn["tasks"][task].data.batches("test", 64)))
    before = sparse.predict(batch, task).clone()
    params = dict(sparse.model.named_parameters())
    with torch.no_grad():
        for n, m in sparse.mask(task).items():
            params[n][~m] = torch.randn(int((~m).sum())) * 100
    assert torch.equal(sparse.predict(batch, task), before)
