"""The one rule for the best subnet on dev (IMP levels and PBFS's schedule alike)."""

import math

from sparseshare.pruning.selection import beats
from sparseshare.training.callbacks import PBFSPruner
from sparseshare.training.search import Level, select_level

NAN = math.nan


def test_a_better_score_wins_whatever_the_density():
    assert beats(0.9, 0.8, 0.8, 0.3, higher_is_better=True)
    assert not beats(0.8, 0.3, 0.9, 0.8, higher_is_better=True)
    assert beats(0.1, 0.8, 0.2, 0.3, higher_is_better=False)  # an error: lower is better


def test_ties_go_to_the_sparser_and_nan_is_no_evidence():
    assert beats(0.9, 0.3, 0.9, 0.5, True) and not beats(0.9, 0.5, 0.9, 0.3, True)
    assert not beats(0.9, 0.5, 0.9, 0.5, True)  # the same subnet again: the first stays
    assert not beats(NAN, 0.1, 0.5, 1.0, True) and beats(0.5, 1.0, NAN, 0.1, True)
    assert beats(NAN, 1.0, None, None, True)  # the first evaluation is the best so far


def test_imp_and_pbfs_choose_alike():
    scores = [(1.0, 0.80), (0.8, 0.82), (0.64, 0.82), (0.41, NAN), (0.33, 0.79)]
    levels = [Level(i, d, s, 2) for i, (d, s) in enumerate(scores)]
    assert select_level(levels) == 2  # 0.82 at 0.8 and at 0.64: the sparser

    class _Mech:  # what record reads of the mechanism
        def mask(self, task):
            return {}

        def state_dict(self):
            return {}

    pruner = PBFSPruner.__new__(PBFSPruner)  # the record alone: no network is needed for the rule
    pruner.best, pruner.history, pruner._step, pruner._higher = {}, [], 0, True
    pruner.mechanism = _Mech()
    chosen = [pruner.record("t", 1.0 - d, s) for d, s in scores]
    assert chosen == [True, True, True, False, False]
    assert pruner.best["t"]["sparsity"] == 1.0 - 0.64
