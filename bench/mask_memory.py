"""What masks cost in memory: the bytes sparse sharing holds per prunable weight beyond the parameters,
their gradients and the optimizer state, on the paper's tagger with N tasks (default 16).

Each task gets a random mask of density 0.5 over the prunable weights; every task takes a few masked
steps as the trainer takes them (``SparseSharing.applied``, gradient clipping at 5), then every task
predicts one batch (an evaluation). What is counted is walked, not estimated: every tensor reachable from
the mechanism's attributes (buffers, caches, the masked step's snapshots, whatever the code keeps),
each storage once, less the storages of the parameters, gradients, optimizer state and the model's own
buffers. One line per optimizer (SGD momentum 0.9, Adam), after the steps and after the evaluation,
with where the bytes are; the last line is the goal, <= 12 bytes per prunable weight at 16 tasks with
SGD momentum (the issue's count before masks were held in bits: 152). Runs on any version of the code:
``PYTHONPATH=<old tree>/src python bench/mask_memory.py`` gives the figure it replaces.
Usage: python bench/mask_memory.py [--tasks N] [--steps K] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import re
import sys
import types
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from masked_step import make_batch  # noqa: E402

from sparseshare.models.tagger import build_tagger  # noqa: E402
from sparseshare.pruning import prunable_names  # noqa: E402
from sparseshare.sharing import SparseSharing  # noqa: E402

GOAL = 12.0


def held(root) -> dict[int, tuple[int, str]]:
    """Every tensor storage reachable from ``root``'s attributes (modules, dicts, lists, tuples, plain
    objects), as data pointer -> (bytes, the attribute path it was first reached by)."""
    out: dict[int, tuple[int, str]] = {}
    seen: set[int] = set()
    stack = [(root, "mech")]
    while stack:
        obj, path = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if torch.is_tensor(obj):
            st = obj.untyped_storage()
            if st.nbytes() and st.data_ptr() not in out:
                out[st.data_ptr()] = (st.nbytes(), path)
            if obj.grad is not None:
                stack.append((obj.grad, path + ".grad"))
        elif isinstance(obj, dict):
            stack += [(v, f"{path}[{k!r}]") for k, v in obj.items()]
            stack += [(k, f"{path}.key") for k in obj if torch.is_tensor(k)]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType, types.MethodType)):
            stack += [(v, f"{path}.{k}") for k, v in vars(obj).items()]
    return out


def accounted(mech, opt) -> set[int]:
    """Storages of what any training holds: parameters, gradients, optimizer state, the model's buffers."""
    tensors = [p for p in mech.parameters()] + [b for b in mech.model.buffers()]
    tensors += [p.grad for p in mech.parameters() if p.grad is not None]
    tensors += [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    return {t.untyped_storage().data_ptr() for t in tensors}


def group(path: str) -> str:
    """Where a tensor is kept, in a few words: the attribute path up to its first key, and that key's kind
    (``_buffers[mask]``: the mask buffers of every task; ``_step._buffers[p]``: the weights' snapshots)."""
    head, _, key = path.removeprefix("mech.").partition("[")
    kind = re.match(r"\(?'([A-Za-z_]\w*)", key)  # a name, not an id
    return f"{head}[{kind.group(1)}]" if kind else head


def extra(mech, opt, weights: int) -> tuple[float, dict[str, float]]:
    known = accounted(mech, opt)
    parts: dict[str, float] = defaultdict(float)
    for ptr, (nbytes, path) in held(mech).items():
        if ptr not in known:
            parts[group(path)] += nbytes / weights
    return sum(parts.values()), dict(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2, help="masked steps per task")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks = {f"t{i}": 17 for i in range(args.tasks)}
    torch.manual_seed(0)
    base = build_tagger(20000, 80, tasks, word_dim=100, hidden=200, dropout=0.5)
    params = dict(base.named_parameters())
    names = prunable_names(params)
    weights = sum(params[n].numel() for n in names)
    g = torch.Generator().manual_seed(0)
    masks = {t: {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in names} for t in tasks}
    batches = [make_batch(g, n_tags=17) for _ in range(4)]
    print(f"{args.tasks} tasks, {weights} prunable weights ({4 * weights / 2**20:.2f} MiB), density 0.5 "
          f"masks, {args.steps} masked steps per task (in place, as the trainer steps), then one predict "
          f"per task")  # fmt: skip
    found = {}
    for label, make in (
        ("SGD momentum 0.9", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        ("Adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
    ):
        mech = SparseSharing(copy.deepcopy(base), masks)
        opt = make(mech.parameters())
        order = list(tasks)
        for i in range(args.steps * len(order)):
            task = order[i % len(order)]
            opt.zero_grad(set_to_none=True)
            with mech.applied(task) if hasattr(mech, "applied") else contextlib.nullcontext():
                mech.loss(batches[i % len(batches)], task).backward()
                torch.nn.utils.clip_grad_norm_(mech.parameters(), 5.0)
                mech.step(opt, task)
        for when in ("after the steps", "after an evaluation"):
            if when == "after an evaluation":
                mech.eval()
                for task in order:
                    mech.predict(batches[0], task)
            total, parts = extra(mech, opt, weights)
            where = ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
            print(f"{label}, {when}: {total:.2f} extra bytes per prunable weight ({where})")
            found[(label, when)] = total
    worst = max(found[("SGD momentum 0.9", w)] for w in ("after the steps", "after an evaluation"))
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"goal: at most {GOAL:g} extra bytes per prunable weight at 16 tasks, SGD momentum (before masks "
          f"were held in bits: 152): {worst:.2f} with {args.tasks} tasks, {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
