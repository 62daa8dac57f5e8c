"""The sequence-labelling experiments (sparse-sharing paper, Exp1-3): the systems of Table 3.

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
from sparseshare.experiments.config import DataConfig, ExperimentConfig
from sparseshare.experiments.run_dir import MetricsLog
from sparseshare.experiments.systems import final_eval, run_single_subnet, run_sparse
from sparseshare.models.tagger import build_tagger
from sparseshare.sharing.cross_stitch_tagger import CrossStitchSharing
from sparseshare.sharing.hard import HardSharing
from sparseshare.sharing.hierarchical import DEFAULT_LEVELS, HierarchicalSharing
from sparseshare.training.trainer import TaskSpec, TrainSettings, train

# task -> (metric, span scheme); the readers emit these schemes. position: Sun et al. 2020, Table 6
TASK_METRICS = {
    "pos": ("accuracy", None),
    "chunk": ("f1", "bio2"),
    "ner": ("f1", "bioes"),
    "position": ("accuracy", None),
}


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

    def build_model(self, tasks: list[str] | None = None, layers: int | None = None):
        """The configured tagger for ``tasks`` (default all); ``layers`` overrides 'model.layers'."""
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
            layers or m.layers,
            m.dropout,
            self.embeddings,
            decoder=m.decoder,
            word_dropout=m.word_dropout,
        )

    def settings(self) -> TrainSettings:
        return TrainSettings(**self.cfg.train.__dict__)

    def count_params(self, model, names: list[str] | None = None) -> int:
        return encoder_param_count(model, names)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def read_tasks(d: DataConfig) -> dict[str, dict[str, list]]:
    """task -> split -> (words, tags), each task read from its corpus (``data.sources`` when mixed).

    A corpus's folder is ``data.paths[corpus]``, else ``data.data_dir`` (one-corpus datasets), else
    the local cache for corpora with a download source (CoNLL-2003).
    """
    from sparseshare.data.corpora import corpus_tasks
    from sparseshare.data.sources import SOURCES, get_source, resolve

    by_corpus: dict[str, list[str]] = {}
    for task, corpus in d.task_sources().items():
        by_corpus.setdefault(corpus, []).append(task)
    raw: dict[str, dict[str, list]] = {}
    for corpus, tasks in by_corpus.items():
        folder = d.paths.get(corpus, None if d.dataset == "mixed" else d.data_dir)
        root = resolve(get_source(corpus), folder) if corpus in SOURCES else folder
        options: dict = {}
        if corpus in ("conll2000", "columns"):
            options = {"dev_size": d.dev_size, "dev_seed": d.dev_seed}
        if corpus == "ptb":
            options = {"split": d.ptb_split}
        if corpus == "columns":
            c = d.columns
            files = {"train": c.train, "test": c.test, **({"dev": c.dev} if c.dev else {})}
            options.update(files=files, tags=c.tags, word=c.word, schemes=c.schemes, sep=c.sep)
        raw.update(corpus_tasks(corpus, root, tasks, d.limits or None, **options))
    return {t: raw[t] for t in d.tasks}


def load_context(cfg: ExperimentConfig, run: Path) -> Context:
    """Resolve and read the data, build shared vocabularies and (optionally) GloVe embeddings."""
    from sparseshare.data.embeddings import embedding_matrix, load_glove
    from sparseshare.data.sequence import SequenceData, build_shared_vocabs
    from sparseshare.data.sources import get_source, resolve

    d = cfg.data
    raw = read_tasks(d)
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


def _train_all_tasks(ctx: Context, name: str, mech) -> dict:
    """Train ``mech`` on every task (task sampling), restore its best-dev state, evaluate it."""
    ckpt = paths.system_dir(ctx.run, name)
    ckpt.mkdir(parents=True, exist_ok=True)
    res = train(
        mech,
        ctx.tasks,
        ctx.settings(),
        seed=ctx.cfg.seed,
        device=ctx.device,
        ckpt_dir=ckpt,
        desc=name,
        log=ctx.log,
    )
    mech.load_state_dict(res.best_state)
    return final_eval(ctx, mech, list(ctx.tasks))


def run_hard(ctx: Context) -> dict:
    """Hard sharing: one encoder, all tasks, proportional task sampling."""
    model = ctx.build_model()
    mech = HardSharing(model)
    return {"params": encoder_param_count(model), "tasks": _train_all_tasks(ctx, "hard", mech)}


def run_cross_stitch(ctx: Context) -> dict:
    """Soft sharing (Misra et al. 2016): a BiLSTM column per task, cross-stitch units after each layer.

    `# Params` counts the columns, the char-CNN and the units (Table 3: 1596k with a 1-layer BiLSTM).
    """
    mech = CrossStitchSharing(ctx.build_model())
    return {"params": encoder_param_count(mech), "tasks": _train_all_tasks(ctx, "cross_stitch", mech)}


def run_hierarchical(ctx: Context) -> dict:
    """Hierarchical sharing (Søgaard and Goldberg 2016) on a 2-layer BiLSTM, whatever 'model.layers' says.

    The paper: "2-layer BiLSTM for hierarchical sharing and 1-layer BiLSTM for other settings" (Exp1).
    POS is supervised at layer 1, chunking and NER at layer 2, or as 'model.hierarchy' says (a mapping
    naming a layer above 2 deepens the BiLSTM to it).
    """
    levels = {**DEFAULT_LEVELS, **ctx.cfg.model.hierarchy}
    depth = max([2, *(levels[t] for t in ctx.tasks if t in levels)])
    mech = HierarchicalSharing(ctx.build_model(layers=depth), ctx.cfg.model.hierarchy)
    return {"params": encoder_param_count(mech), "tasks": _train_all_tasks(ctx, "hierarchical", mech)}


SYSTEM_RUNNERS = {
    "single": run_single,
    "single_subnet": run_single_subnet,
    "hard": run_hard,
    "cross_stitch": run_cross_stitch,
    "hierarchical": run_hierarchical,
    "sparse": run_sparse,
}
