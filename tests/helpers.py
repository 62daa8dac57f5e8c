"""Toy batches and models shared by the unit tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sparseshare.data.sequence import SequenceData
from sparseshare.models.tagger import build_tagger

# the exactness tests run on every device there is; without CUDA they show as skipped, never as passed
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
    ),
]


@dataclass
class ToyBatch:
    words: torch.Tensor
    chars: torch.Tensor
    mask: torch.Tensor
    tags: torch.Tensor

    def to(self, device):
        out = ToyBatch(*(t.to(device) for t in (self.words, self.chars, self.mask, self.tags)))
        if hasattr(self, "index"):
            out.index = self.index
        return out


def toy_batch(seed: int, n_tags: int = 5, b: int = 4, t: int = 7, n_words: int = 30, n_chars: int = 12):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t)[None, :] < lengths[:, None]
    words = torch.randint(1, n_words, (b, t), generator=g) * mask
    chars = torch.randint(1, n_chars, (b, t, 5), generator=g) * mask[..., None]
    tags = torch.randint(0, n_tags, (b, t), generator=g) * mask
    return ToyBatch(words, chars, mask, tags)


def toy_tagger(seed: int = 0, tasks=("pos", "ner"), hidden: int = 8, layers: int = 1, dropout: float = 0.0):
    torch.manual_seed(seed)
    return build_tagger(
        n_words=30,
        n_chars=12,
        n_tags={t: 5 for t in tasks},
        word_dim=6,
        char_dim=4,
        char_filters=3,
        hidden=hidden,
        layers=layers,
        dropout=dropout,
    )


def random_masks(model, tasks, density: float, seed: int = 0):
    from sparseshare.pruning import prunable_names

    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    names = prunable_names(params)
    return {t: {n: torch.rand(params[n].shape, generator=g) < density for n in names} for t in tasks}


class ToyVocab:
    def __init__(self, itos):
        self.itos = list(itos)

    def __len__(self):
        return len(self.itos)


class ToyData:
    """A small learnable tagging task with the SequenceData interface (tag = word id mod n_tags)."""

    def __init__(self, seed: int, n_tags: int = 5, sizes=(48, 16, 16)):
        self.tag_vocab = ToyVocab([f"T{i}" for i in range(n_tags)])
        self.splits, self._batches = {}, {}
        for split, n, off in zip(("train", "dev", "test"), sizes, (0, 1000, 2000)):
            b = toy_batch(seed + off, n_tags=n_tags, b=n)
            b.tags = (b.words % n_tags) * b.mask
            self._batches[split] = b
            self.splits[split] = [
                (
                    [str(w) for w in b.words[i][b.mask[i]].tolist()],
                    [f"T{t}" for t in b.tags[i][b.mask[i]].tolist()],
                )
                for i in range(n)
            ]

    def num_examples(self, split):
        return len(self.splits[split])

    @property
    def labels(self):
        return self.tag_vocab.itos

    targets = staticmethod(SequenceData.targets)

    def batches(self, split, batch_size, shuffle=False, generator=None):
        full = self._batches[split]
        n = full.words.shape[0]
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            b = ToyBatch(full.words[idx], full.chars[idx], full.mask[idx], full.tags[idx])
            b.index = idx
            yield b


def export_reproduces_the_run(run, system: str, tmp_path) -> dict:
    """Export every task's subnet of ``system`` from the finished ``run`` and load it back: its test
    predictions must equal the run's module's, its test score the one in results.json. {task: sizes}."""
    import json

    from sparseshare.experiments.results.predict import export_run, load_system
    from sparseshare.experiments.run.units import open_context
    from sparseshare.experiments.systems.checks import load_experiment
    from sparseshare.export import load_subnet
    from sparseshare.training.evaluation import collect, evaluate_task
    from sparseshare.training.pipeline import evaluate

    res = json.loads((run / "results.json").read_text())["systems"][system]["tasks"]
    ctx = open_context(load_experiment(run / "config.yaml"), tmp_path)
    sizes = {}
    for t, task in ctx.tasks.items():
        path, sizes[t] = export_run(run, t, tmp_path / f"{t}.safetensors", system)
        sub = load_subnet(path)
        assert sub.task == t
        got, _ = collect(sub, task, "test", 100, "cpu")
        want, _ = collect(load_system(run, system, t), task, "test", 100, "cpu")
        assert got == want if isinstance(got, list) else torch.equal(got, want)  # every prediction
        # to the last bits: a reloaded module's matrices may sit at other alignments than the trained
        # one's, and BLAS kernels then sum in another order (seen as 1 ulp of an AUC)
        score = evaluate_task(sub, task, "test", 100, "cpu")[task.key]
        assert score == pytest.approx(res[t]["test"], rel=1e-12)
        assert evaluate(sub, task, "test", device="cpu")[t][task.key] == score  # the public API's too
    return sizes


def readme_blocks(title: str, language: str) -> list[str]:
    """The ```language code blocks of the README section headed ``## title``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index(f"## {title}") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def masked_step(mech, opt, batch, task: str, in_place: bool = True) -> None:
    """One training step of ``task`` on a masked mechanism: in place (the trainer's path, M_t applied to
    the weights) or through the substituting forward."""
    opt.zero_grad(set_to_none=True)
    if in_place:
        with mech.applied(task):
            mech.loss(batch, task).backward()
            mech.step(opt, task)
    else:
        mech.loss(batch, task).backward()
        mech.step(opt, task)
