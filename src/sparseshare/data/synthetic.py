"""The synthetic two-task regression data of MMoE (Ma et al., KDD 2018, Section 3.2), used by PBFS 4.4.2.

Task relatedness is the cosine p of the two tasks' weight vectors:
1. u1, u2 ∈ R^d orthogonal unit vectors; 2. w1 = c u1, w2 = c (p u1 + sqrt(1 - p^2) u2);
3. x ∈ R^d with every element from N(0, 1);
4. y_k = w_k^T x + Σ_{i=1..m} sin(α_i w_k^T x + β_i) + ε_k, with ε_1, ε_2 iid N(0, 0.01).
α_i and β_i are shared by both tasks and all samples. Constants the paper leaves open, chosen here:
d = 100, m = 10, c = 1, α_i and β_i drawn once from N(0, 1), and 0.01 read as the noise *variance*
(std 0.1; PBFS's best synthetic MSEs, ~0.0101, sit right at that floor). With these the empirical
Pearson correlation of y1 and y2 rises with p but stays below it (the sines are nonlinear), as MMoE
notes. u1, u2, α, β come from ``seed``; train/dev/test are one draw split in order, so they share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparseshare.data.tabular import TabularData

TASKS = ("t1", "t2")


def mmoe_synthetic(
    n: int,
    correlation: float,
    *,
    dim: int = 100,
    num_sines: int = 10,
    scale: float = 1.0,
    noise_var: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples ``(x [n, dim], y1 [n], y2 [n])`` with weight-vector cosine ``correlation`` (= p)."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation p must be in [-1, 1], got {correlation}")
    if dim < 2 or num_sines < 0 or n < 0:
        raise ValueError("need dim >= 2, num_sines >= 0 and n >= 0")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))  # step 1: orthonormal u1, u2
    u1, u2 = q[:, 0], q[:, 1]
    alpha, beta = rng.standard_normal(num_sines), rng.standard_normal(num_sines)
    w1 = scale * u1  # step 2
    w2 = scale * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)
    x = rng.standard_normal((n, dim))  # step 3

    def label(w: np.ndarray) -> np.ndarray:  # step 4
        z = x @ w
        return z + np.sin(np.outer(z, alpha) + beta).sum(axis=1) + rng.normal(0.0, np.sqrt(noise_var), n)

    return x.astype(np.float32), label(w1).astype(np.float32), label(w2).astype(np.float32)


def synthetic_data(
    correlation: float,
    sizes: Sequence[int] = (100_000, 10_000, 10_000),
    *,
    seed: int = 0,
    **kwargs,
) -> TabularData:
    """Train/dev/test :class:`TabularData` with regression tasks 't1' and 't2' (PBFS: 100k/10k/10k)."""
    x, y1, y2 = mmoe_synthetic(sum(sizes), correlation, seed=seed, **kwargs)
    bounds = np.cumsum(sizes)[:-1]
    splits = {
        name: (xs, {"t1": a, "t2": b})
        for name, xs, a, b in zip(
            ("train", "dev", "test"), np.split(x, bounds), np.split(y1, bounds), np.split(y2, bounds)
        )
    }
    return TabularData.from_arrays(splits, {t: "regression" for t in TASKS})
