"""Experts of one shape run as one batched operation (MMoE, CGC/PLE and PBFS experts).

An MMoE, CGC/PLE or PBFS step runs many small expert MLPs on the same rows; one by one, each pays its
own operator and autograd overhead and its own pass over the rows. :func:`run_experts` runs them
together: per layer the experts' weights are stacked, read through the modules at call time (so the
``M_t ⊙ θ`` that ``functional_call`` substitutes, or weights masked in place, are what it computes with),
and the layer is one ``baddbmm`` over experts. Every expert keeps its own ``nn.Linear`` parameters, so
parameter names, ``state_dict`` keys, masks, prunable globs and per-expert pruning are unchanged.

The numbers are those of the expert-by-expert forward and backward, bit for bit, on a CPU (torch 2.13,
MKL; ``tests/models/test_batched_experts.py``): the forward y_e = b_e + x_e W_e^T is one BLAS product
of the same shape per expert, as ``F.linear``'s ``addmm`` is; the weight gradient g_e^T x_e too; the
bias gradient sums each expert's rows as ``g_e.sum(0)`` does. For experts that read one input the
weight gradient is a single product ``[B, E*h]^T x`` (one pass over ``x``): MKL computes each expert's
columns of it as it computes that expert's own product (found by test; the forward's ``x [W_1; ...;
W_E]^T`` is not so for 4-unit experts, hence a batch of per-expert products there). Experts run one by
one where this does not hold:

- an expert that is not a :class:`SequentialExpert` of ``Linear -> ReLU [-> Dropout]`` layers (as
  :class:`~sparseshare.models.mlp.MLP` is; a ``make_expert`` of your own is run as it is), or whose
  activation is not ReLU (other activations round their vectorised and scalar tails apart);
- active dropout (each expert draws its own mask, in turn);
- a layer width that is not a multiple of 16 bytes (4 float32s): MKL rounds an output matrix that does
  not start 16-byte aligned differently, as an expert's slice of a stacked one then would;
- fewer than 400 multiply-adds per expert and row block (``rows * in * out``): torch's CPU ``bmm``
  computes those with a loop of its own, not BLAS;
- a dtype other than float32 (where this was established), or autocast.

On a CPU, experts of 16 float32s or wider also run one by one (``batched()`` overrides it): their
products already run near BLAS's peak alone (CGC/PLE's 16 units, PBFS's 32 of the census configs:
``bench/experts.py`` measures their steps 6-12% slower batched, from stacking the weights), while the
narrow ones (MMoE's 4 units) waste most of each product and gain.

An input that needs a gradient (PLE's upper levels read gate outputs) is read by one expert per batched
call: its k readers run in k calls, in order, so the engine sums their gradients in the order the
expert-by-expert backward does. On a GPU the batched path is the same arithmetic; cuBLAS picks kernels
by shape, so there it is not promised bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

ALIGN_BYTES = 16  # MKL's rounding depends on an output matrix starting 16-byte aligned
MIN_PRODUCT = 400  # rows * in * out below which torch's CPU bmm uses its own loop instead of BLAS
WIDE_BYTES = 64  # on a CPU, experts this wide (16 float32s) already run near BLAS's peak one by one

_mode = "auto"


@contextmanager
def _mode_as(mode: str) -> Iterator[None]:
    global _mode
    before, _mode = _mode, mode
    try:
        yield
    finally:
        _mode = before


def one_by_one():
    """Inside the block experts run one after another (the computation the batched one reproduces)."""
    return _mode_as("one_by_one")


def batched():
    """Inside the block experts that can be batched are, wide ones on a CPU too (tests, benchmarks)."""
    return _mode_as("batched")


class SequentialExpert(nn.Module):
    """An expert that is its ``layers`` (an ``nn.Sequential``) applied to ``x``: what can be batched.

    A subclass that overrides ``forward`` is run as it is, one by one.
    """

    layers: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _BatchedLinear(torch.autograd.Function):
    """y_e = b_e + x_e W_e^T for every expert e at once; the backward computes, per expert, the products
    and sums ``nn.Linear``'s backward computes. ``shared``: every expert reads the same ``x[0]`` (an
    expanded view, needing no gradient)."""

    @staticmethod
    def forward(ctx, x, w, b, shared: bool):
        ctx.save_for_backward(x, w)
        ctx.shared = shared
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.bmm(g, w)
        if ctx.needs_input_grad[1]:
            if ctx.shared:
                n, rows, out = g.shape
                gw = g.transpose(0, 1).reshape(rows, n * out).t().mm(x[0]).view(n, out, -1)
            else:
                gw = torch.bmm(g.transpose(1, 2), x)
        if ctx.needs_input_grad[2]:
            gb = g.sum(1)
        return gx, gw, gb, None


def _stages(expert: nn.Module) -> list[tuple[nn.Linear, nn.Module]] | None:
    """(Linear, ReLU) per layer of a :class:`SequentialExpert` whose dropout is inactive; else None."""
    if type(expert).forward is not SequentialExpert.forward:
        return None
    out: list[tuple[nn.Linear, nn.Module]] = []
    for m in expert.layers:
        if type(m) is nn.Linear and m.bias is not None:
            out.append((m, None))
        elif type(m) is nn.ReLU and out and out[-1][1] is None:
            out[-1] = (out[-1][0], m)
        elif type(m) is nn.Dropout and out and out[-1][1] is not None:
            if m.training and m.p > 0:
                return None
        else:
            return None
    return out if out and out[-1][1] is not None else None


def _batchable(stages: list, first: torch.Tensor, rows: int) -> bool:
    """Whether a batched call over experts of these stages reproduces their one-by-one numbers."""
    if first.dim() != 2 or first.dtype != torch.float32 or torch.is_autocast_enabled(first.device.type):
        return False
    width = stages[0][0].out_features * first.element_size()
    if _mode == "auto" and first.device.type == "cpu" and width >= WIDE_BYTES:
        return False
    step = max(1, ALIGN_BYTES // first.element_size())
    for lin, _ in stages:
        out, inp = lin.weight.shape
        if out % step or rows * inp * out < MIN_PRODUCT or lin.weight.dtype != first.dtype:
            return False
    return not first.requires_grad or stages[0][0].in_features % step == 0


def _rounds(inputs: Sequence[torch.Tensor]) -> list[list[int]]:
    """Experts' indices per batched call: an input needing a gradient is read once per call, its j-th
    reader in call j (so its readers' gradients reach it in the expert-by-expert order)."""
    seen: dict[int, int] = {}
    rounds: list[list[int]] = []
    for i, x in enumerate(inputs):
        r = 0
        if x.requires_grad:
            r = seen.get(id(x), 0)
            seen[id(x)] = r + 1
        while len(rounds) <= r:
            rounds.append([])
        rounds[r].append(i)
    return rounds


def _batched(stages: list[list[tuple[nn.Linear, nn.Module]]], inputs: Sequence[torch.Tensor]):
    first = inputs[0]
    shared = not first.requires_grad and all(x is first for x in inputs)
    h = first.expand(len(inputs), *first.shape) if shared else torch.stack(list(inputs))
    for j in range(len(stages[0])):
        w = torch.stack([s[j][0].weight for s in stages])
        b = torch.stack([s[j][0].bias for s in stages])
        h = stages[0][j][1](_BatchedLinear.apply(h, w, b, shared and j == 0))
    return h.unbind(0)


def run_experts(experts: Sequence[nn.Module], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[e(x) for e, x in zip(experts, inputs)]``, experts of one shape batched (see the module doc).

    Each input is ``[B, in]``; the outputs are ``[B, h]`` views of one ``[E, B, h]`` tensor where batched.
    """
    if len(experts) != len(inputs):
        raise ValueError(f"{len(experts)} experts but {len(inputs)} inputs")
    stages = [_stages(e) for e in experts] if _mode != "one_by_one" and len(experts) > 1 else None
    shapes = None if stages is None or None in stages else {_shape(s) for s in stages}
    if shapes is None or len(shapes) != 1 or not _batchable(stages[0], inputs[0], inputs[0].shape[0]):
        return [e(x) for e, x in zip(experts, inputs)]
    if any(x.shape != inputs[0].shape or x.dtype != inputs[0].dtype for x in inputs):
        return [e(x) for e, x in zip(experts, inputs)]
    out: list[torch.Tensor | None] = [None] * len(experts)
    for idx in _rounds(inputs):
        if len(idx) == 1:
            out[idx[0]] = experts[idx[0]](inputs[idx[0]])
            continue
        for i, y in zip(idx, _batched([stages[i] for i in idx], [inputs[i] for i in idx])):
            out[i] = y
    return out


def _shape(stages: list[tuple[nn.Linear, nn.Module]]) -> tuple:
    return tuple((tuple(lin.weight.shape), lin.weight.device, lin.weight.dtype) for lin, _ in stages)
