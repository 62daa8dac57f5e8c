"""PBFS Algorithm 1 (shared pools) and Eq. 5 (shared mean factor) on hand-made correlation matrices."""

from __future__ import annotations

import numpy as np
import pytest

from sparseshare.sharing.pools import correlation_matrix, pools_of, shared_mean_factor, shared_pools


def _matrix(tasks, pairs):
    m = np.eye(len(tasks))
    for (a, b), r in pairs.items():
        i, j = tasks.index(a), tasks.index(b)
        m[i, j] = m[j, i] = r
    return m


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.5, 2.0])
def test_two_tasks_make_one_pool_for_any_alpha(alpha):
    assert shared_pools(
        ["income", "marital"], _matrix(["income", "marital"], {("income", "marital"): -0.18}), alpha
    ) == [["income", "marital"]]


def test_alpha_controls_the_number_of_pools():
    tasks = ["g1", "g2", "g3"]
    coor = _matrix(tasks, {("g1", "g2"): 0.85, ("g1", "g3"): 0.82, ("g2", "g3"): 0.94})
    assert shared_pools(tasks, coor, 1.0) == [tasks]
    assert shared_pools(tasks, coor, 0.0) == [["g1", "g2"], ["g1", "g3"], ["g2", "g3"]]  # every pair alone
    # (g1,g2) opens pool 1; (g1,g3) is 0.03 from it and joins (SMF -> mean of all three pairs, 0.87);
    # (g2,g3) is 0.07 from 0.87, so with alpha 0.05 it opens pool 2
    assert shared_pools(tasks, coor, 0.05) == [tasks, ["g2", "g3"]]


def test_smf_is_the_mean_over_all_pairs_of_the_pools_tasks_and_is_updated():
    t = ["a", "b", "c", "d"]
    coor = _matrix(
        t,
        {
            ("a", "b"): 0.5,
            ("a", "c"): 0.58,
            ("a", "d"): 0.73,
            ("b", "c"): 0.9,
            ("b", "d"): 0.7,
            ("c", "d"): 0.75,
        },
    )
    assert shared_mean_factor([0, 1, 2], coor) == pytest.approx((0.5 + 0.58 + 0.9) / 3)
    # (a,b) opens P1 (0.5); (a,c) joins, SMF = mean(ab, ac, bc) = 0.66; (a,d) = 0.73 joins (0.07 < 0.1),
    # SMF = mean of all 6 pairs = 0.693; (b,c) = 0.9 opens P2; (b,d), (c,d) join P1. Averaging only the
    # pairs assigned so far (0.54) would have sent (a,d) to a new pool instead.
    assert shared_pools(t, coor, 0.1) == [["a", "b", "c", "d"], ["b", "c"]]
    assert pools_of("a", [["a", "b", "c", "d"], ["b", "c"]]) == [0]
    assert pools_of("c", [["a", "b", "c", "d"], ["b", "c"]]) == [0, 1]


def test_the_condition_is_strict():
    t = ["a", "b", "c"]
    coor = _matrix(t, {("a", "b"): 0.5, ("a", "c"): 0.75, ("b", "c"): 0.75})
    # |0.5 - 0.75| = 0.25 is not < 0.25: (a,c) opens pool 2, and (b,c) joins it (|0.75 - 0.75| < 0.25)
    assert shared_pools(t, coor, 0.25) == [["a", "b"], ["a", "b", "c"]]


def test_correlation_matrix_is_pearson_on_rows_labelled_for_both():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = 2 * a + rng.normal(size=200)
    c = np.full(200, np.nan)
    c[:100] = -a[:100]
    tasks, m = correlation_matrix({"a": a, "b": b, "c": c})
    assert tasks == ["a", "b", "c"]
    assert m[0, 1] == pytest.approx(np.corrcoef(a, b)[0, 1]) and m[0, 0] == 1.0
    assert m[0, 2] == pytest.approx(-1.0) and m[2, 0] == m[0, 2]
    _, disjoint = correlation_matrix({"x": np.r_[a[:5], [np.nan] * 5], "y": np.r_[[np.nan] * 5, a[:5]]})
    assert np.isnan(disjoint[0, 1])
    with pytest.raises(ValueError, match="undefined for every pair"):
        shared_pools(["x", "y"], disjoint, 0.1)


def test_pairs_without_shared_rows_are_skipped():
    # two subjects' grades: tasks of one subject never label the other's rows (as the Student data)
    t = ["p1", "p2", "p3", "m1", "m2"]
    coor = np.full((5, 5), np.nan)
    np.fill_diagonal(coor, 1.0)
    for (a, b), r in {("p1", "p2"): 0.87, ("p1", "p3"): 0.83, ("p2", "p3"): 0.92, ("m1", "m2"): 0.84}.items():
        coor[t.index(a), t.index(b)] = coor[t.index(b), t.index(a)] = r
    # Algorithm 1 pools pairs of similar correlation, related or not: at 0.1 every pair is within reach
    assert shared_pools(t, coor, 0.1) == [t]
    # at 0.02: (m1, m2) = 0.84 joins the pool of (p1, p3) = 0.83; undefined pairs never count in SMF
    assert shared_pools(t, coor, 0.02) == [["p1", "p2"], ["p1", "p3", "m1", "m2"], ["p2", "p3"]]
