"""Expert factories a test config names (``tabular.expert: tests.experiments.expert_factories:...``)."""

from __future__ import annotations

import torch
from torch import nn


class GatedExpert(nn.Module):
    """A gated linear unit, ``[..., in_dim] -> [..., out_dim]``: not an MLP the built-in experts make."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(self.proj(x), dim=-1)


def gated(in_dim: int, out_dim: int) -> nn.Module:
    return GatedExpert(in_dim, out_dim)


NOT_CALLABLE = 3
