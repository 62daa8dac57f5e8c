"""Sparsity schedules as pure functions of the level or step."""

from __future__ import annotations


def imp_densities(alpha: float, min_density: float) -> list[float]:
    """Nominal densities of IMP levels 0..z: (1-alpha)^i until it first falls to <= min_density.

    Algorithm 1, step 6: stop once ‖M‖₀/|θ| <= S. Level 0 is the dense network.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"pruning rate alpha must be in (0, 1), got {alpha}")
    if not 0.0 < min_density <= 1.0:
        raise ValueError(f"minimal density must be in (0, 1], got {min_density}")
    out = [1.0]
    while out[-1] > min_density:
        out.append(out[-1] * (1.0 - alpha))
    return out


def polynomial_sparsity(
    step: int, begin_step: int, end_step: int, initial: float, final: float, power: float = 3.0
) -> float:
    """Polynomial decay from ``initial`` to ``final`` sparsity (TF-MOT PolynomialDecay, PBFS Alg. 2).

    s(t) = final + (initial - final) * (1 - p)^power with p = clip((t - begin) / (end - begin), 0, 1).
    """
    if end_step <= begin_step:
        return final if step >= end_step else initial
    p = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final + (initial - final) * (1.0 - p) ** power
