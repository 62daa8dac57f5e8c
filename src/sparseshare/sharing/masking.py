"""The one place where a mask meets an optimizer step (used by sparse sharing and PBFS).

After ``optimizer.step()``, every entry outside the mask is put back as it was, for the weight and
for each per-element optimizer state tensor (momentum buffer, Adam moments): a masked step never
changes anything outside the subnet, whatever the optimizer (the authors' code leaks here).
Plain SGD (no momentum, no weight decay) needs no restore: its update -lr * grad is exactly zero
where the masked forward gave zero gradient.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import torch


def is_stateless(optimizer: torch.optim.Optimizer) -> bool:
    """True for plain SGD, whose update cannot move a weight that received zero gradient."""
    return type(optimizer) is torch.optim.SGD and all(
        g.get("momentum", 0) == 0 and g.get("weight_decay", 0) == 0 for g in optimizer.param_groups
    )


# a float's bits as an integer of the same width: restoring through the bits is exact for every value
_BITS = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def restore_outside(t: torch.Tensor, saved: torch.Tensor, outside: torch.Tensor) -> None:
    """``t`` takes ``saved``'s value wherever ``outside`` (all ones bits) is set, bit for bit, in place.

    The select is done on the integers holding the floats' bits, ``t ^= (t ^ saved) & outside``: the same
    result as ``torch.where(mask, t, saved)`` (NaN, -0.0 and all) at a tenth of its cost on a CPU, where
    ``where`` with a bool condition runs unvectorised (3.9 ms against 0.4 ms for 530k weights).
    """
    bits = _BITS.get(t.dtype)
    if bits is None or outside.dtype != bits:
        torch.where(outside == 0, t, saved, out=t)
        return
    ti = t.view(bits)
    diff = torch.bitwise_xor(ti, saved.view(bits))
    diff.bitwise_and_(outside)
    ti.bitwise_xor_(diff)


class MaskedStep:
    """Callable ``(optimizer, params, mask)`` with snapshot buffers reused across steps."""

    def __init__(self):
        self._buffers: dict = {}
        self._outside: dict = {}

    def reset(self) -> None:
        """Forget buffers (after a device or dtype move)."""
        self._buffers = {}
        self._outside = {}

    def _bits(self, m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """All ones bits where ``m`` is False, in ``like``'s integer width; cached for this mask tensor
        until it is changed in place (its version counter moves) or dropped."""
        bits = _BITS.get(like.dtype, torch.int32)
        key = (m._version, bits)
        cached = self._outside.get(id(m))
        if cached is None or cached[0]() is not m or cached[1] != key:  # a reused id holds a dead ref
            self._outside = {k: v for k, v in self._outside.items() if v[0]() is not None}
            cached = (weakref.ref(m), key, (~m).to(bits).neg_())
            self._outside[id(m)] = cached
        return cached[2]

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
            restore_outside(t, b, self._bits(m, t))
        for name in fresh:  # state created by this step: outside the mask it stays at its initial zeros
            p, m = params[name], mask[name]
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~m, 0)
