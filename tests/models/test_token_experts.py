"""MMoE per token over a shared embedding (models/token_experts.py)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sparseshare.contracts import check_model
from sparseshare.data.task import Task
from sparseshare.models.mlp import MLP
from sparseshare.models.token_experts import TokenMMoE
from sparseshare.training.pipeline import evaluate, train_jointly
from sparseshare.training.settings import TrainSettings
from tests.helpers import ToyData, toy_batch

TAGS = {"pos": 5, "ner": 3}


def _model(**kw):
    torch.manual_seed(0)
    return TokenMMoE(TAGS, vocab_size=30, embedding_dim=8, num_experts=3, expert_hidden=(16,), **kw)


class Residual(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.inp = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.lin = nn.Linear(out_dim, out_dim)

    def forward(self, x):
        h = self.inp(x)
        return h + torch.relu(self.lin(self.norm(h)))


def test_it_fits_the_model_contract_and_outputs_tags_per_token():
    model = _model()
    check_model(model)
    batch = toy_batch(1)
    for t, n in TAGS.items():
        out = model(batch, t)
        assert out.shape == (*batch.mask.shape, n)
        assert torch.all(out[~batch.mask] == 0) and torch.isfinite(out).all()
        pred = model.predict(batch, t)
        assert [len(p) for p in pred] == batch.mask.sum(1).tolist()  # unpadded, as the tagger's


def test_per_token_gates_are_a_softmax_over_experts():
    model = _model()
    batch = toy_batch(2)
    n = int(batch.mask.sum())
    for t in TAGS:
        w = model.gate_weights(batch, t)
        assert w.shape == (n, 3)
        assert torch.all(w >= 0) and torch.allclose(w.sum(-1), torch.ones(n))
    assert not torch.allclose(model.gate_weights(batch, "pos"), model.gate_weights(batch, "ner"))


def test_padding_changes_nothing_for_real_tokens():
    model = _model()
    batch = toy_batch(3)
    assert (~batch.mask).any()
    other = toy_batch(3)
    other.words = torch.where(batch.mask, batch.words, 29)  # padded positions get a real word id
    other.tags = torch.where(batch.mask, batch.tags, 2)
    for t in TAGS:
        batch.tags, other.tags = batch.tags % TAGS[t], other.tags % TAGS[t]
        a, b = model(batch, t), model(other, t)
        assert torch.equal(a[batch.mask], b[batch.mask])
        assert torch.equal(model.task_loss(a, batch, t), model.task_loss(b, other, t))
        assert model.predict(batch, t) == model.predict(other, t)


def test_the_expert_factory_is_called_once_per_expert():
    calls = []

    def expert(i, o):
        calls.append((i, o))
        return Residual(i, o)

    model = _model(expert=expert, expert_dim=6)
    assert calls == [(8, 6)] * 3
    assert model(toy_batch(1), "pos").shape[-1] == 5


def test_a_factory_of_the_same_mlp_gives_the_default_numbers():
    plain, own = _model(), _model(expert=lambda i, o: MLP(i, [o]))
    batch = toy_batch(4)
    for t in TAGS:
        assert torch.equal(plain(batch, t), own(batch, t))


def test_a_users_embedding_module_is_called_on_the_batch():
    class Words(nn.Module):
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(30, 4, padding_idx=0)
            self.char = nn.Embedding(12, 4, padding_idx=0)

        def forward(self, batch):
            return torch.cat([self.word(batch.words), self.char(batch.chars).mean(2)], -1)

    model = TokenMMoE(TAGS, embedding=Words(), num_experts=2, expert_hidden=(8,))
    assert model(toy_batch(1), "ner").shape == (4, 7, 3)
    with pytest.raises(ValueError, match="not both"):
        TokenMMoE(TAGS, vocab_size=30, embedding=Words())


def test_each_tasks_loss_reaches_exactly_its_named_parameters():
    model = _model()
    batch = toy_batch(5)
    params = dict(model.named_parameters())
    for t in TAGS:
        batch.tags = batch.tags % TAGS[t]
        names = model.task_parameter_names(t)
        others = tuple(f"{part}.{o}." for o in TAGS if o != t for part in ("gates", "heads"))
        assert any(n.startswith(f"gates.{t}.") for n in names)
        assert not any(n.startswith(others) for n in names)
        model.zero_grad(set_to_none=True)
        model.loss(batch, t).backward()
        reached = {n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
        assert reached == set(names)


def test_training_with_the_trainer_beats_the_majority_tag():
    model = _model()
    data = {t: ToyData(i, n_tags=n) for i, (t, n) in enumerate(TAGS.items())}
    tasks = [Task(t, d, "accuracy") for t, d in data.items()]
    train = {t: next(d.batches("train", 48)) for t, d in data.items()}

    def train_loss(t):
        return model.task_loss(model(train[t], t), train[t], t).item()

    before = {t: train_loss(t) for t in TAGS}
    settings = TrainSettings(epochs=15, patience=0, batch_size=8, lr=0.5, optimizer="sgd")
    train_jointly(model, tasks, settings, progress=False)  # proportional task sampling
    scores = evaluate(model, tasks, "test")
    for t, d in data.items():
        assert train_loss(t) < before[t] / 2
        test = next(d.batches("test", 48))
        gold = test.tags[test.mask]
        majority = (gold == gold.mode().values).float().mean().item()
        assert scores[t]["accuracy"] > majority + 0.2


@pytest.mark.integration
def test_the_examples_quick_mode_runs():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "examples/own_encoder_experts.py", "--quick"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for name in ("mmoe", "ple", "token_mmoe", "token_ple", "token_pbfs"):
        assert any(line.startswith(name) and "test" in line for line in lines), done.stdout
