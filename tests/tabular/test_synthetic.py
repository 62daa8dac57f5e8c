"""MMoE synthetic data (Ma et al. 2018, Section 3.2): controllable task correlation."""

from __future__ import annotations

import numpy as np
import pytest

from sparseshare.data.synthetic import mmoe_synthetic, synthetic_data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_correlation_rises_with_the_weight_cosine(seed):
    corr = []
    for p in (0.2, 0.5, 0.8, 1.0):
        _, y1, y2 = mmoe_synthetic(5000, p, seed=seed)
        corr.append(np.corrcoef(y1, y2)[0, 1])
    assert all(a < b for a, b in zip(corr, corr[1:])), corr
    assert corr[-1] > 0.95  # p = 1: the same function, only the noise differs


def test_construction_follows_the_paper():
    x, y1, y2 = mmoe_synthetic(20_000, 1.0, dim=10, num_sines=0, scale=2.0, noise_var=0.01, seed=4)
    assert x.shape == (20_000, 10) and abs(x.std() - 1) < 0.02 and abs(x.mean()) < 0.02
    # with no sines, y = w^T x + noise: var = c^2 + 0.01, and y1 - y2 is the noise difference only
    assert np.var(y1) == pytest.approx(4.01, rel=0.05)
    assert np.var(y1 - y2) == pytest.approx(0.02, rel=0.1)
    _, a, b = mmoe_synthetic(20_000, 0.0, dim=10, num_sines=0, seed=4)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03  # orthogonal weight vectors: uncorrelated
    again = mmoe_synthetic(100, 0.5, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(again, mmoe_synthetic(100, 0.5, seed=3)))
    with pytest.raises(ValueError):
        mmoe_synthetic(10, 1.5)


def test_synthetic_data_splits_one_draw():
    data = synthetic_data(0.5, sizes=(300, 50, 50), seed=1)
    assert data.kinds == {"t1": "regression", "t2": "regression"} and data.in_dim == 100
    assert [data.num_examples(s) for s in ("train", "dev", "test")] == [300, 50, 50]
    _, y1, _ = mmoe_synthetic(400, 0.5, seed=1)
    assert np.allclose(data.labels("dev")["t1"], y1[300:350])
    x = next(data.batches("train", 300)).x.numpy()
    assert np.allclose(x.mean(0), 0, atol=1e-5) and np.allclose(x.std(0), 1, atol=1e-3)
