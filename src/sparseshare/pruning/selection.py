"""Which subnet is better on dev: one rule for IMP's levels and PBFS's schedule.

Sparse sharing (Sun et al. 2020, Section 3.2) picks each task's subnet by its dev score; among equal
scores the sparser one. PBFS (Algorithm 2, "Return") keeps each task's best subnet the same way. An
undefined (NaN) score is no evidence: it never beats a defined one, and a defined one always beats it.
"""

from __future__ import annotations

import math


def beats(
    score: float, density: float, best_score: float | None, best_density: float | None, higher_is_better: bool
) -> bool:
    """``(score, density)`` is better on dev than the best so far (``best_score`` None: there is none)."""
    if best_score is None or best_density is None:
        return True
    if math.isnan(score):
        return False
    if math.isnan(best_score):
        return True
    sign = 1.0 if higher_is_better else -1.0
    if sign * score != sign * best_score:
        return sign * score > sign * best_score
    return density < best_density  # ties -> the sparser
