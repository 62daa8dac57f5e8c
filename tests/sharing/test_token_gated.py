"""CGC/PLE and PBFS per token (sharing/token_ple.py, models/token_experts.py, sharing/pbfs.token_pbfs):
the tagger's contract, gradients reaching exactly each task's named parameters, PBFS's masks exact and
pruned to each task's own sparsity on Algorithm 2's schedule, and the recipe builders."""

from __future__ import annotations

import pytest
import torch

from sparseshare.contracts import check_mechanism, check_model
from sparseshare.data.task import Task
from sparseshare.models.token_experts import TokenPBFSNet, token_mmoe_net, token_pbfs_net
from sparseshare.sharing.pbfs import PBFS, token_pbfs
from sparseshare.sharing.registry import build_recipe, check_recipe
from sparseshare.sharing.token_ple import TokenPLE, token_ple_net
from sparseshare.training.callbacks import PBFSPruner, PBFSSchedule
from sparseshare.training.pipeline import evaluate, train_jointly
from sparseshare.training.settings import TrainSettings
from tests.helpers import ToyData, toy_batch

TAGS = {"pos": 5, "ner": 3, "chunk": 4}


def _ple(levels=2, **kw):
    torch.manual_seed(0)
    return TokenPLE(TAGS, vocab_size=30, embedding_dim=8, num_specific=1, num_shared=2,
                    expert_hidden=(12,), levels=levels, **kw)  # fmt: skip


def _pbfs(**kw):
    torch.manual_seed(0)
    return token_pbfs(TAGS, vocab_size=30, embedding_dim=8, pools=[["pos", "chunk"], ["ner", "chunk"]],
                      expert_hidden=(12, 12), **kw)  # fmt: skip


def _reached(model, batch, task) -> set[str]:
    batch.tags = batch.tags % TAGS[task]
    model.zero_grad(set_to_none=True)
    model.loss(batch, task).backward()
    net = model.net if isinstance(model, PBFS) else model
    return {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_token_ple_fits_the_contract_and_each_loss_reaches_exactly_its_named_parameters(levels):
    model = _ple(levels)
    check_model(model)
    batch = toy_batch(1)
    for t, n in TAGS.items():
        out = model(batch, t)
        assert out.shape == (*batch.mask.shape, n) and torch.all(out[~batch.mask] == 0)
        assert [len(p) for p in model.predict(batch, t)] == batch.mask.sum(1).tolist()
        names = set(model.task_parameter_names(t))
        assert _reached(model, toy_batch(2), t) == names
        others = [o for o in TAGS if o != t]
        assert not any(n.startswith(f"heads.{o}.") for o in others for n in names)
        if levels == 1:  # CGC: no other task's experts or gate
            assert not any(f".{o}." in n for o in others for n in names)


def test_token_ple_computes_every_task_at_once_as_one_by_one():
    model = _ple(3).eval()
    batch = toy_batch(3)
    both = model.forward_all(batch)
    for t in TAGS:
        assert torch.allclose(both[t], model(batch, t), atol=1e-6)


def test_token_pbfs_fits_the_contract_and_its_masks_cover_only_its_pools():
    mech = _pbfs()
    check_model(mech.net)
    check_mechanism(mech)
    net = mech.net
    assert isinstance(net, TokenPBFSNet) and net.memberships == {"pos": [0], "ner": [1], "chunk": [0, 1]}
    assert all(n.startswith("shared.0.") for n in mech.mask("pos"))
    assert {n.split(".")[1] for n in mech.mask("chunk")} == {"0", "1"}
    batch = toy_batch(4)
    for t in TAGS:
        assert mech(batch, t).shape == (*batch.mask.shape, TAGS[t])
        names = set(net.task_parameter_names(t))
        assert _reached(mech, toy_batch(5), t) == names
        assert any(n.startswith("embedding.") for n in names)


class StepWatch:
    """After each update (and the pruner's re-pruning, which moves masks, never weights): the shared
    expert weights that changed since the last step must all be kept by some task's mask of that step."""

    def __init__(self, mech):
        self.mech, self.steps, self.moved_outside = mech, 0, 0
        self._snap()

    def _snap(self):
        net = self.mech.net
        self.before = {n: p.detach().clone() for n, p in net.named_parameters()}
        self.kept = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in self.before.items()
                     if n in set(net.shared_weight_names())}  # fmt: skip
        for t in net.tasks:
            for n, m in self.mech.mask(t).items():
                self.kept[n] |= m

    def on_step(self, step):
        params = dict(self.mech.net.named_parameters())
        for n, kept in self.kept.items():
            changed = params[n].detach() != self.before[n]
            self.moved_outside += int((changed & ~kept).sum())
        self.steps += 1
        self._snap()


def test_token_pbfs_prunes_each_task_to_its_target_and_never_moves_a_weight_no_task_keeps():
    mech = _pbfs()
    data = {t: ToyData(i, n_tags=n) for i, (t, n) in enumerate(TAGS.items())}
    tasks = {t: Task(t, d, "accuracy") for t, d in data.items()}
    settings = TrainSettings(epochs=4, patience=0, batch_size=8, lr=0.05, optimizer="adam", clip=None)
    steps = 4 * 3 * 6  # sampled steps: 3 tasks x 48 rows / 8 per epoch
    targets = {"pos": 0.5, "ner": 0.7, "chunk": 0.3}
    pruner = PBFSPruner(mech, targets, 0.1, begin_step=0, end_step=steps, frequency=6)
    schedule = PBFSSchedule(pruner, tasks)
    watch = StepWatch(mech)
    train_jointly(mech, tasks, settings, seed=1, callbacks=[schedule, watch], restore_best=False,
                  progress=False)  # fmt: skip
    assert watch.steps == steps and watch.moved_outside == 0
    assert pruner.history, "the schedule recorded every task's dev score per sparsity"
    # each task ends on its own best subnet (step 4), at a sparsity the schedule passed through
    for t in TAGS:
        assert mech.sparsity(t) == pytest.approx(pruner.best[t]["sparsity"], abs=1e-6)
        assert 0.1 - 0.02 <= mech.sparsity(t) <= targets[t] + 0.02
    scores = evaluate(mech, tasks, "test")
    assert all(scores[t]["accuracy"] > 0.3 for t in TAGS), scores


def test_the_end_of_the_schedule_reaches_each_tasks_own_target():
    mech = _pbfs()
    targets = {"pos": 0.5, "ner": 0.8, "chunk": 0.2}
    pruner = PBFSPruner(mech, targets, 0.0, begin_step=0, end_step=10, frequency=1)
    for step in range(11):
        pruner.on_step(step)
    for t, want in targets.items():
        assert mech.sparsity(t) == pytest.approx(want, abs=0.01)


KW = {"n_words": 30, "n_chars": 12, "n_tags": TAGS, "word_dim": 6, "char_dim": 4, "char_filters": 5,
      "char_width": 3, "dropout": 0.0}  # fmt: skip


@pytest.mark.parametrize(
    "recipe",
    [
        {"network": "token_mmoe", "kwargs": {**KW, "num_experts": 3, "expert_hidden": [8]}},
        {"network": "token_ple", "kwargs": {**KW, "levels": 1, "expert_hidden": [8]}},
        {"network": "token_ple", "kwargs": {**KW, "levels": 2, "num_shared": 2, "decoder": "crf"}},
        {
            "network": "token_pbfs_net",
            "kwargs": {**KW, "pools": [["pos", "ner", "chunk"]]},
            "mechanism": "pbfs",
        },
    ],
    ids=["mmoe", "cgc", "ple-crf", "pbfs"],
)
def test_recipes_rebuild_the_token_networks_over_words_and_chars(recipe):
    check_recipe(recipe)
    model = build_recipe(recipe)
    check_mechanism(model) if isinstance(model, PBFS) else check_model(model)
    emb = model.embedding if not isinstance(model, PBFS) else model.net.embedding
    assert emb.out_dim == 6 + 5 and emb.char_cnn is not None
    batch = toy_batch(6)
    for t, n in TAGS.items():
        assert model(batch, t).shape == (*batch.mask.shape, n)
    torch.manual_seed(0)
    again = build_recipe(recipe)
    torch.manual_seed(0)
    third = build_recipe(recipe)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), third.state_dict().values()))


def test_pretrained_vectors_go_into_the_word_embedding():
    vectors = torch.randn(30, 6)
    for build in (token_mmoe_net, token_ple_net, token_pbfs_net):
        net = build(**KW, embeddings=vectors)
        assert torch.equal(net.embedding.word_embed.weight, vectors)
    with pytest.raises(ValueError, match="want"):
        token_mmoe_net(**KW, embeddings=torch.randn(29, 6))
