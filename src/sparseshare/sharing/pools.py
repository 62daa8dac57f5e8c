"""PBFS shared pools (Algorithm 1, Eq. 5): group tasks by the Pearson correlation of their labels.

Pairs <i, j> (i < j, in task order) are visited once each. A pair joins the first pool s whose shared
mean factor satisfies |SMF_s - COOR<i,j>| < alpha (strict), adding both tasks to Q[s] and updating
SMF_s; otherwise it opens a new pool with SMF = COOR<i,j>. SMF_s (Eq. 5) is the mean correlation over
all C(A_s, 2) pairs of the pool's A_s tasks (for A_s = 2, the pair's correlation). A task can belong
to several pools; two tasks always give one pool.

A pair whose correlation is undefined (NaN: the two tasks never label the same rows, as the two subjects
of the Student data) is skipped, and left out of SMF means: there is no relatedness to pool it on. If
every pair is undefined there is nothing to pool, which is an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np


def correlation_matrix(y: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """COOR_M: Pearson correlation of every pair of tasks' labels (Section 3.2), diagonal 1.

    Labels are compared on the rows where both are present (NaN = no label). A pair with fewer than two
    such rows, or a constant label, has no correlation and gets NaN.
    """
    tasks = list(y)
    cols = [np.asarray(y[t], dtype=np.float64).reshape(-1) for t in tasks]
    n = {c.shape[0] for c in cols}
    if len(n) > 1:
        raise ValueError(f"label arrays differ in length: {dict(zip(tasks, (c.shape[0] for c in cols)))}")
    coor = np.eye(len(tasks))
    for i, j in itertools.combinations(range(len(tasks)), 2):
        both = np.isfinite(cols[i]) & np.isfinite(cols[j])
        a, b = cols[i][both], cols[j][both]
        undefined = a.size < 2 or a.std() == 0 or b.std() == 0
        coor[i, j] = coor[j, i] = np.nan if undefined else float(np.corrcoef(a, b)[0, 1])
    return tasks, coor


def shared_mean_factor(members: Sequence[int], coor: np.ndarray) -> float:
    """SMF_s, Eq. 5: mean of COOR over all pairs of the pool's tasks."""
    pairs = list(itertools.combinations(sorted(members), 2))
    return float(np.nanmean([coor[i, j] for i, j in pairs]))


def shared_pools(tasks: Sequence[str], coor: np.ndarray, alpha: float) -> list[list[str]]:
    """Algorithm 1: the shared pools Q as lists of task names (in task order), in the order opened."""
    coor = np.asarray(coor, dtype=np.float64)
    m = len(tasks)
    if coor.shape != (m, m):
        raise ValueError(f"correlation matrix has shape {coor.shape}, expected ({m}, {m})")
    if m < 2:
        raise ValueError("shared pools need at least two tasks")
    if np.isinf(coor).any():
        raise ValueError("correlation matrix holds infinite values")
    defined = [(i, j) for i, j in itertools.combinations(range(m), 2) if np.isfinite(coor[i, j])]
    if not defined:
        raise ValueError(
            f"correlation undefined for every pair of {list(tasks)}: no task shares rows with another"
        )
    if not np.allclose(coor, coor.T, equal_nan=True):
        raise ValueError("correlation matrix must be symmetric")
    pools: list[set[int]] = []
    smf: list[float] = []
    for i, j in defined:
        r = coor[i, j]
        for s in range(len(pools)):
            if abs(smf[s] - r) < alpha:
                pools[s] |= {i, j}
                smf[s] = shared_mean_factor(pools[s], coor)
                break
        else:
            pools.append({i, j})
            smf.append(float(r))
    return [[tasks[k] for k in sorted(p)] for p in pools]


def pools_of(task: str, pools: Sequence[Sequence[str]]) -> list[int]:
    """U_m: indices of the pools that task ``task`` belongs to."""
    return [s for s, p in enumerate(pools) if task in p]
