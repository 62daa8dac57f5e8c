"""PBFS shared pools (Algorithm 1, Eq. 5): group tasks by the Pearson correlation of their labels.

Pairs <i, j> (i < j, in task order) are visited once each. A pair joins the first pool s whose shared
mean factor satisfies |SMF_s - COOR<i,j>| < alpha (strict), adding both tasks to Q[s] and updating
SMF_s; otherwise it opens a new pool with SMF = COOR<i,j>. SMF_s (Eq. 5) is the mean correlation over
all C(A_s, 2) pairs of the pool's A_s tasks (for A_s = 2, the pair's correlation). A task can belong
to several pools; two tasks always give one pool.

Pearson's correlation is undefined in two ways, given two rules:

- a label that is constant on the rows two tasks share (a target that is 0 in every row, say) has no
  linear relation with anything: the pair's correlation is taken as 0, uncorrelated, so the task pools
  only with pairs of unrelated tasks (:func:`constant_tasks` names such tasks, for a warning);
- two tasks that label fewer than two common rows (as the two subjects of the Student data) give NaN:
  the pair is skipped, and left out of SMF means, as there is no relatedness to pool it on. If every
  pair is so undefined there is nothing to pool, which is an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np


def correlation_matrix(y: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """COOR_M: Pearson correlation of every pair of tasks' labels (Section 3.2), diagonal 1.

    Labels are compared on the rows where both are present (NaN = no label). A pair with fewer than two
    such rows gets NaN (skipped by :func:`shared_pools`); a label constant on them gets 0 (uncorrelated).
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
        if a.size < 2:
            r = np.nan
        elif (a == a[0]).all() or (b == b[0]).all():
            r = 0.0
        else:
            r = float(np.corrcoef(a, b)[0, 1])
        coor[i, j] = coor[j, i] = r
    return tasks, coor


def constant_tasks(y: Mapping[str, np.ndarray]) -> list[str]:
    """The tasks whose labels (NaN = none) all hold one value: their correlations are taken as 0."""
    out = []
    for task, labels in y.items():
        v = np.asarray(labels, dtype=np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size and (v == v[0]).all():
            out.append(task)
    return out


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
