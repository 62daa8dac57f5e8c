"""The sequence-labelling experiment (sparse-sharing paper, Exp1): single, hard and sparse sharing.

Each system trains with the same trainer and data; selection (checkpoints, subnets) uses dev only and
each system's best-dev state is evaluated on test exactly once. Finished systems and IMP levels are
kept on disk, so a killed run started again with the same command resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparseshare import paths
from sparseshare.errors import ConfigError
from sparseshare.experiments.config import ExperimentConfig
from sparseshare.experiments.run_dir import MetricsLog
from sparseshare.experiments.systems import final_eval, run_sparse
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing.hard import HardSharing
from sparseshare.training.trainer import TaskSpec, TrainSettings, train

TASK_METRICS = {"pos": ("accuracy", None), "chunk": ("f1", "bio2"), "ner": ("f1", "bioes")}


@dataclass
class Context:
    cfg: ExperimentConfig
    run: Path
    tasks: dict[str, TaskSpec]
    n_words: int
    n_chars: int
    embeddings: torch.Tensor | None
    device: torch.device
    log: MetricsLog

    def build_model(self, tasks: list[str] | None = None):
        torch.manual_seed(self.cfg.seed)
        tasks = tasks or list(self.tasks)
        m = self.cfg.model
        n_tags = {t: len(self.tasks[t].data.tag_vocab) for t in tasks}
        return build_tagger(
            self.n_words,
            self.n_chars,
            n_tags,
            m.word_dim,
            m.char_dim,
            m.char_filters,
            m.char_width,
            m.hidden,
            m.layers,
            m.dropout,
            self.embeddings,
        )

    def settings(self) -> TrainSettings:
        return TrainSettings(**self.cfg.train.__dict__)

    def count_params(self, model, names: list[str] | None = None) -> int:
        return encoder_param_count(model, names)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_context(cfg: ExperimentConfig, run: Path) -> Context:
    """Resolve and read the data, build shared vocabularies and (optionally) GloVe embeddings."""
    from sparseshare.data.embeddings import embedding_matrix, load_glove
    from sparseshare.data.sequence import SequenceData, build_shared_vocabs, conll03_tasks
    from sparseshare.data.sources import get_source, resolve

    d = cfg.data
    root = resolve(get_source(d.dataset), d.data_dir)
    raw = conll03_tasks(root, tasks=tuple(d.tasks), limits=d.limits or None)
    glove, extra = None, set()
    if d.embeddings:
        src = Path(d.embeddings)
        words, vectors = load_glove(src if src.exists() else resolve(get_source(d.embeddings)))
        if vectors.shape[1] != cfg.model.word_dim:
            raise ConfigError(
                f"'model.word_dim' is {cfg.model.word_dim} but the embeddings '{d.embeddings}' have "
                f"{vectors.shape[1]} dimensions"
            )
        glove = (words, vectors)
        known = set(words)
        for t in d.tasks:
            for split in ("dev", "test"):
                for ws, _ in raw[t][split]:
                    extra.update(w.lower() if d.lower_words else w for w in ws)
        extra &= known
    word_vocab, char_vocab = build_shared_vocabs(
        [raw[t]["train"] for t in d.tasks], lower=d.lower_words, extra_words=extra
    )
    tasks = {}
    for t in d.tasks:
        metric, scheme = TASK_METRICS[t]
        data = SequenceData(t, raw[t], word_vocab, char_vocab, lower_words=d.lower_words)
        tasks[t] = TaskSpec(t, data, metric, scheme)
    emb, found = None, 0
    if glove is not None:
        mat, found = embedding_matrix(
            list(word_vocab.itos),
            glove[0],
            glove[1],
            cfg.model.word_dim,
            np.random.default_rng(cfg.seed),
            lower=d.lower_words,
        )
        emb = torch.from_numpy(mat)
    log = MetricsLog(run)
    if emb is not None:
        log({"phase": "data", "embeddings": d.embeddings, "vocab": len(word_vocab), "found": int(found)})
    return Context(cfg, run, tasks, len(word_vocab), len(char_vocab), emb, resolve_device(cfg.device), log)


def encoder_param_count(model, names: list[str] | None = None) -> int:
    """Encoder parameters excluding embeddings (the paper's `# Params`: no embeddings, no output layers)."""
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.startswith("encoder.") and "embed" not in n and (names is None or n in names)
    )


def run_single(ctx: Context) -> dict:
    """Single-task baseline: one full model per task, trained alone."""
    result, params = {}, 0
    for t in ctx.tasks:
        model = ctx.build_model([t])
        mech = HardSharing(model)
        ckpt = paths.system_dir(ctx.run, "single", t)
        ckpt.mkdir(parents=True, exist_ok=True)
        res = train(
            mech,
            {t: ctx.tasks[t]},
            ctx.settings(),
            seed=ctx.cfg.seed,
            device=ctx.device,
            ckpt_dir=ckpt,
            desc=f"single {t}",
            log=ctx.log,
        )
        mech.load_state_dict(res.best_state)
        result.update(final_eval(ctx, mech, [t]))
        params += encoder_param_count(model)
    return {"params": params, "tasks": result}


def run_hard(ctx: Context) -> dict:
    """Hard sharing: one encoder, all tasks, proportional task sampling."""
    model = ctx.build_model()
    mech = HardSharing(model)
    ckpt = paths.system_dir(ctx.run, "hard")
    ckpt.mkdir(parents=True, exist_ok=True)
    res = train(
        mech,
        ctx.tasks,
        ctx.settings(),
        seed=ctx.cfg.seed,
        device=ctx.device,
        ckpt_dir=ckpt,
        desc="hard",
        log=ctx.log,
    )
    mech.load_state_dict(res.best_state)
    return {"params": encoder_param_count(model), "tasks": final_eval(ctx, mech, list(ctx.tasks))}


SYSTEM_RUNNERS = {"single": run_single, "hard": run_hard, "sparse": run_sparse}
