"""Pruning-Based Feature Sharing (PBFS, Entropy 2022): network (Eq. 1-3, 7-9) and masked training.

Task m gates (Eq. 2-3, 8) over its specific experts and the shared experts of its pools U_m (Algorithm 1,
``pools.py``); its tower gives Y_m (Eq. 9). Task m sees the shared experts' weight matrices as M_m ⊙ θ_s
(Eq. 6): :class:`PBFS` *is* :class:`~sparseshare.sharing.sparse.SparseSharing` over the expert network
(the one place masks meet weights): ``functional_call`` substitutes M_t ⊙ θ (zero gradient outside M_t)
and ``step`` restores weights and optimizer state outside the stepped subnet. In the joint loss (Eq. 10)
each task uses its own view, so a shared weight learns only from the tasks keeping it; ``step(opt, None)``
protects what no task keeps. Masks are held in bits and saved in ``state_dict`` (see ``sparse.py``).
Sparsity = fraction pruned, density = fraction kept. Algorithm 2 (the pruner and the trainer callback
that drives it) is in training/callbacks.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sparseshare.masks.mask import Mask, density, validate_mask
from sparseshare.models.mlp import ExpertFactory, PBFSNet
from sparseshare.models.token_experts import TokenPBFSNet
from sparseshare.sharing.sparse import SparseSharing


class PBFS(SparseSharing):
    """PBFS as a sharing mechanism: task t computes with M_t ⊙ θ on its pools' shared experts.

    Sparse sharing over the expert network: every task's mask covers every shared expert weight matrix,
    all-False outside the task's pools (it never runs those experts), so the one masked forward and step
    of :class:`SparseSharing` serve both methods. ``mask(task)`` and ``sparsity(task)`` cover the task's
    own pools only.
    """

    def __init__(
        self, net: PBFSNet | TokenPBFSNet, masks: Mapping[str, Mapping[str, torch.Tensor]] | None = None
    ):
        params = dict(net.named_parameters())
        every = net.shared_weight_names()
        full: dict[str, Mask] = {}
        for task in net.tasks:
            own = net.shared_weight_names(task)
            given = validate_mask((masks or {}).get(task, {}), params)
            extra = sorted(set(given) - set(own))
            if extra:
                raise KeyError(f"mask of task '{task}' names parameters outside its pools: {extra}")
            full[task] = {
                n: given.get(n, torch.ones_like(params[n], dtype=torch.bool))
                if n in own
                else torch.zeros_like(params[n], dtype=torch.bool)
                for n in every
            }
        super().__init__(net, full)

    @property
    def net(self) -> PBFSNet | TokenPBFSNet:
        return self.model

    @property
    def kinds(self) -> dict[str, str]:
        return self.model.kinds

    def _task_names(self, task: str) -> list[str]:
        """The shared expert weights of the task's own pools (the only ones its forward runs)."""
        return self.model.shared_weight_names(task)

    def mask(self, task: str, pool: int | None = None) -> Mask:
        """Task's current mask over its own pools (or one pool), unpacked: bool tensors of their own."""
        return self._mask(task, self.model.shared_weight_names(task, pool))

    def set_mask(self, task: str, mask: Mapping[str, torch.Tensor]) -> None:
        """Replace (part of) the task's mask."""
        own = set(self.model.shared_weight_names(task))
        for n in mask:
            if n not in own:
                raise KeyError(f"'{n}' is not a shared weight of task '{task}'")
        super().set_mask(task, mask)

    def sparsity(self, task: str, pool: int | None = None) -> float:
        """Fraction of the task's shared-expert weights pruned (PBFS's 'sparsity')."""
        return 1.0 - density(self.mask(task, pool))

    def forward_all(self, batch, tasks: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Each task through its own masked view (masks differ, so the shared experts run per task)."""
        return {t: self(batch, t) for t in (tasks or self.tasks)}


def pbfs(
    in_dim: int,
    kinds: Mapping[str, str],
    pools: Sequence[Sequence[str]] | None = None,
    num_specific: int = 1,
    num_shared: int = 1,
    expert_hidden: Sequence[int] = (32, 32),
    tower: Sequence[int] = (8,),
    dropout: float = 0.0,
    activation: str = "relu",
    masks: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    *,
    expert: ExpertFactory | None = None,
    expert_dim: int | None = None,
) -> PBFS:
    """Builder; defaults follow the census setting (experts of 2 x 32 units, Section 4.3), one pool.
    ``expert(in_dim, expert_dim)``: experts of your own (see :class:`~sparseshare.models.mlp.PBFSNet`)."""
    net = PBFSNet(
        in_dim, kinds, pools, num_specific, num_shared, expert_hidden, tower, dropout, activation,
        expert=expert, expert_dim=expert_dim,
    )  # fmt: skip
    return PBFS(net, masks)


def token_pbfs(
    n_tags: Mapping[str, int],
    vocab_size: int | None = None,
    masks: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    **network,
) -> PBFS:
    """PBFS per token: :class:`PBFS` over a :class:`~sparseshare.models.token_experts.TokenPBFSNet`
    (``network``: its keywords: ``pools``, ``embedding``, ``embedding_dim``, the experts' sizes or
    ``expert``, ``decoder``). Each task's masks cover its pools' shared experts; Algorithm 2's pruner
    (``training/callbacks.py``) sets them."""
    return PBFS(TokenPBFSNet(n_tags, vocab_size, **network), masks)
