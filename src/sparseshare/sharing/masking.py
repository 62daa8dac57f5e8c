"""The one place where a mask meets an optimizer step (used by sparse sharing and PBFS).

After ``optimizer.step()``, every entry outside the mask is put back as it was, for the weight and
for each per-element optimizer state tensor (momentum buffer, Adam moments): a masked step never
changes anything outside the subnet, whatever the optimizer (the authors' code leaks here).
Plain SGD (no momentum, no weight decay) needs no restore: its update -lr * grad is exactly zero
where the masked forward gave zero gradient.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def is_stateless(optimizer: torch.optim.Optimizer) -> bool:
    """True for plain SGD, whose update cannot move a weight that received zero gradient."""
    return type(optimizer) is torch.optim.SGD and all(
        g.get("momentum", 0) == 0 and g.get("weight_decay", 0) == 0 for g in optimizer.param_groups
    )


class MaskedStep:
    """Callable ``(optimizer, params, mask)`` with snapshot buffers reused across steps."""

    def __init__(self):
        self._buffers: dict = {}

    def reset(self) -> None:
        """Forget buffers (after a device or dtype move)."""
        self._buffers = {}

    def _buffer(self, key, like: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != like.shape or buf.device != like.device or buf.dtype != like.dtype:
            buf = self._buffers[key] = torch.empty_like(like)
        return buf

    @torch.no_grad()
    def __call__(
        self,
        optimizer: torch.optim.Optimizer,
        params: Mapping[str, torch.Tensor],
        mask: Mapping[str, torch.Tensor],
    ) -> None:
        if is_stateless(optimizer):
            optimizer.step()
            return
        pairs = []  # (live tensor, snapshot buffer, mask)
        for name, m in mask.items():
            p = params[name]
            pairs.append((p, self._buffer(("p", name), p), m))
            for k, v in optimizer.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    pairs.append((v, self._buffer((k, name), v), m))
        if pairs:
            torch._foreach_copy_([b for _, b, _ in pairs], [t for t, _, _ in pairs])
        fresh = [name for name in mask if not optimizer.state.get(params[name])]
        optimizer.step()
        for t, b, m in pairs:
            torch.where(m, t, b, out=t)
        for name in fresh:  # state created by this step: outside the mask it stays at its initial zeros
            p, m = params[name], mask[name]
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~m, 0)
