"""Tag a CoNLL-style (one token per line) file with a trained system of a finished run."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from sparseshare import paths
from sparseshare.errors import RunError


def predict_file(run: Path, task: str, file: Path, output: Path | None, system: str | None = None) -> int:
    """Append the predicted tag column to every token line of ``file``; return the sentence count."""
    if not paths.config(run).exists():
        raise RunError(f"{run}: not a run directory (no config.yaml)")
    from sparseshare.data.conll import read_columns
    from sparseshare.data.sequence import SequenceData
    from sparseshare.experiments.config import load_config
    from sparseshare.experiments.sequence import load_context
    from sparseshare.masks.io import load_masks
    from sparseshare.sharing.hard import HardSharing
    from sparseshare.sharing.sparse import SparseSharing
    from sparseshare.training.trainer import TaskSpec, predict

    cfg = load_config(paths.config(run))
    if task not in cfg.data.tasks:
        raise RunError(f"{run}: no task '{task}'; this run has {cfg.data.tasks}")
    system = system or (
        "sparse" if "sparse" in cfg.systems else "hard" if "hard" in cfg.systems else "single"
    )
    ckpt = paths.system_dir(run, system, task if system == "single" else None) / "best.pt"
    if not ckpt.exists():
        raise RunError(f"{run}: system '{system}' has no checkpoint ({ckpt})")
    ctx = load_context(cfg, run)
    sentences = read_columns(file)
    spec = ctx.tasks[task]
    data = SequenceData(
        task,
        {"test": [([row[0] for row in s], [spec.data.tag_vocab.itos[0]] * len(s)) for s in sentences]},
        spec.data.word_vocab,
        spec.data.char_vocab,
        tag_vocab=spec.data.tag_vocab,
        lower_words=cfg.data.lower_words,
    )
    model = ctx.build_model([task] if system == "single" else None)
    mech = SparseSharing(model, load_masks(paths.masks(run))) if system == "sparse" else HardSharing(model)
    mech.load_state_dict(torch.load(ckpt, map_location=ctx.device, weights_only=False))
    mech.to(ctx.device)
    tags = predict(mech, TaskSpec(task, data, spec.metric, spec.scheme), "test", 100, ctx.device)
    lines = []
    for sent, pred in zip(sentences, tags):
        lines += [" ".join([*row, tag]) for row, tag in zip(sent, pred)] + [""]
    text = "\n".join(lines) + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)
    return len(sentences)
