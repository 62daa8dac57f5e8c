"""The one place where a mask meets an optimizer step (used by sparse sharing and PBFS).

After ``optimizer.step()``, every entry outside the mask is put back as it was, for the weight and
for each per-element optimizer state tensor (momentum buffer, Adam moments): a masked step never
changes anything outside the subnet, whatever the optimizer (the authors' code leaks here).
Plain SGD (no momentum, no weight decay) needs no restore: its update -lr * grad is exactly zero
where the masked forward gave zero gradient.

A training step may also apply the mask to the weights in place (:meth:`MaskedStep.apply`: the entries
outside are kept aside and zeroed, the forward runs the model's own parameters, gradients outside are
cleared as they accumulate by :meth:`MaskedStep.mask_grad`) and put them back after the optimizer step
(``__call__(..., applied=True)``) or without one (:meth:`MaskedStep.unapply`). Same numbers, bit for
bit, as substituting ``M_t ⊙ θ``; what it saves is the substitution: on a GPU, cuDNN keeps its flat LSTM
weights instead of re-flattening them every step.
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


def keep_outside(t: torch.Tensor, out: torch.Tensor, outside: torch.Tensor) -> None:
    """Before the step: ``out`` holds ``t``'s bits where ``outside`` is set (all ones), zeros elsewhere."""
    bits = outside.dtype
    torch.bitwise_and(t.view(bits), outside, out=out.view(bits))


def restore_outside(t: torch.Tensor, kept: torch.Tensor, inside: torch.Tensor) -> None:
    """After the step: ``t`` takes back the bits :func:`keep_outside` kept, wherever ``inside`` is clear.

    The select works on the integers holding the floats' bits (``t = t & inside | kept``): the same result
    as ``torch.where(mask, t, saved)``, NaN and -0.0 included, at a tenth of its cost on a CPU, where
    ``where`` with a bool condition runs unvectorised (3.9 ms against 0.4 ms for 530k weights).
    """
    ti = t.view(inside.dtype)
    ti.bitwise_and_(inside)
    ti.bitwise_or_(kept.view(inside.dtype))


class MaskedStep:
    """Callable ``(optimizer, params, mask)`` with snapshot buffers reused across steps."""

    def __init__(self):
        self._buffers: dict = {}
        self._outside: dict = {}

    def reset(self) -> None:
        """Forget buffers (after a device or dtype move)."""
        self._buffers = {}
        self._outside = {}

    def _bits(self, m: torch.Tensor, bits: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(all ones where ``m`` is False, all ones where it is True) as integers of ``bits``; cached for
        this mask tensor until it is changed in place (its version counter moves) or dropped."""
        key = (m._version, bits)
        cached = self._outside.get(id(m))
        if cached is None or cached[0]() is not m or cached[1] != key:  # a reused id holds a dead ref
            self._outside = {k: v for k, v in self._outside.items() if v[0]() is not None}
            outside = (~m).to(bits).neg_()
            cached = (weakref.ref(m), key, outside, torch.bitwise_not(outside))
            self._outside[id(m)] = cached
        return cached[2], cached[3]

    def _buffer(self, key, like: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != like.shape or buf.device != like.device or buf.dtype != like.dtype:
            buf = self._buffers[key] = torch.empty_like(like)
        return buf

    def pairs(
        self,
        optimizer,
        params: Mapping[str, torch.Tensor],
        mask: Mapping[str, torch.Tensor],
        weights: bool = True,
    ) -> list:
        """(live tensor, snapshot buffer, mask) for every masked weight (unless ``weights`` is False) and
        its per-element optimizer state."""
        out = []
        for name, m in mask.items():
            p = params[name]
            if weights:
                out.append((p, self._buffer(("p", name), p), m))
            for k, v in optimizer.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    out.append((v, self._buffer((k, name), v), m))
        return out

    def _keep(self, pairs: list) -> None:
        for t, b, m in pairs:
            kind = _BITS.get(t.dtype)
            if kind is None:
                b.copy_(t)
            else:
                keep_outside(t, b, self._bits(m, kind)[0])

    def _restore(self, pairs: list) -> None:
        for t, b, m in pairs:
            kind = _BITS.get(t.dtype)
            if kind is None:  # no integer of this width: the slower select
                torch.where(m, t, b, out=t)
            else:
                restore_outside(t, b, self._bits(m, kind)[1])

    def _weights(self, params: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> list:
        return [(params[n], self._buffer(("p", n), params[n]), m) for n, m in mask.items()]

    @torch.no_grad()
    def apply(self, params: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> None:
        """θ ← M ⊙ θ in place, the entries outside M kept aside for :meth:`unapply` or the step."""
        pairs = self._weights(params, mask)
        self._keep(pairs)
        for t, _, m in pairs:
            self._clear_outside(t, m)

    @torch.no_grad()
    def unapply(self, params: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor]) -> None:
        """Put back the entries :meth:`apply` kept aside."""
        self._restore(self._weights(params, mask))

    @torch.no_grad()
    def mask_grad(self, p: torch.Tensor, m: torch.Tensor) -> None:
        """Clear ``p.grad`` outside ``m`` (what the gradient of M ⊙ θ with respect to θ is)."""
        self._clear_outside(p.grad, m)

    def _clear_outside(self, t: torch.Tensor, m: torch.Tensor) -> None:
        """``t`` ← +0 outside ``m``, in place."""
        kind = _BITS.get(t.dtype)
        if kind is None:
            t.mul_(m)
        else:
            t.view(kind).bitwise_and_(self._bits(m, kind)[1])

    @torch.no_grad()
    def __call__(
        self,
        optimizer: torch.optim.Optimizer,
        params: Mapping[str, torch.Tensor],
        mask: Mapping[str, torch.Tensor],
        applied: bool = False,
    ) -> None:
        """The optimizer step, then everything outside ``mask`` as it was before. ``applied``: the
        weights hold M ⊙ θ since :meth:`apply`, which kept their outside entries."""
        if is_stateless(optimizer):
            optimizer.step()
            if applied:
                self.unapply(params, mask)
            return
        pairs = self.pairs(optimizer, params, mask, weights=not applied)
        self._keep(pairs)
        fresh = [name for name in mask if not optimizer.state.get(params[name])]
        optimizer.step()
        self._restore(pairs + (self._weights(params, mask) if applied else []))
        for name in fresh:  # state created by this step: outside the mask it stays at its initial zeros
            p, m = params[name], mask[name]
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~m, 0)
