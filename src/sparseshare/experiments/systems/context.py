"""What a system's runner is given: the prepared data, the run directory, the device and the config
sections systems read (the seed, training, search, the models), never the whole config.

``prepare_data(data, model, seed, run)`` reads the data once (sequence corpora with shared vocabularies
and GloVe, or a tabular dataset) and writes ``preprocess.json`` into the run: the vocabularies or feature
encoder, so that ``predict`` and ``export`` need the run directory alone, never the training data. It
reads the data section, the model section (the word vectors' width, the tagger's sizes) and the seed
only; one prepared copy serves every run whose three agree (the Ray driver shares it between units).
Networks are described by recipes (``sharing.registry``): JSON that rebuilds them, saved beside each
system's weights. The run layer makes the :class:`Context` from a config (``run.units.open_context``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sparseshare import paths
from sparseshare.data.columns import task_kind
from sparseshare.data.task import Task
from sparseshare.errors import ConfigError, RunError
from sparseshare.experiments.config.datasets import get_dataset, load_tabular, read_sequence_tasks
from sparseshare.metrics import PRIMARY
from sparseshare.run_dir import MetricsLog, read_json, write_json_atomic
from sparseshare.sharing.expert_code import import_expert
from sparseshare.sharing.registry import WORD_VECTOR_NETWORKS, build_recipe
from sparseshare.training.settings import TrainSettings

if TYPE_CHECKING:
    from sparseshare.experiments.config.data import DataConfig
    from sparseshare.experiments.config.sections import ModelConfig, PBFSConfig, TabularModelConfig
    from sparseshare.training.settings import SearchSettings

logger = logging.getLogger("sparseshare")


@dataclass(frozen=True)
class PreparedData:
    """A config's data, read once: the tasks, the base network's data-given sizes, the word vectors."""

    kind: str  # "sequence" or "tabular"
    tasks: dict[str, Task]
    base: dict[str, Any]  # the base network's recipe kwargs that do not depend on the tasks
    preprocess: dict  # what predict and export need of it (preprocess.json)
    embeddings: torch.Tensor | None = None  # pretrained word vectors (sequence), given at build time
    data: Any = None  # tabular: every task's rows in one TabularData (joint training, Eq. 10)
    network: str = "tagger"  # the base network of sequence data: the tagger, or over a transformer
    inputs: dict[str, Any] = field(default_factory=dict)  # given when the base network builds, never stored


@dataclass
class Context:
    """One run's systems' view: the prepared data and the config sections a runner reads."""

    run: Path
    prepared: PreparedData
    device: torch.device
    log: MetricsLog
    seed: int
    train: TrainSettings
    search: SearchSettings
    model: ModelConfig
    tabular: TabularModelConfig
    pbfs: PBFSConfig
    names: dict[str, str] = field(default_factory=dict)  # a system's folder under another name (a variant)

    @property
    def kind(self) -> str:
        return self.prepared.kind

    @property
    def tasks(self) -> dict[str, Task]:
        return self.prepared.tasks

    @property
    def data(self) -> Any:
        return self.prepared.data

    @property
    def preprocess(self) -> dict:
        return self.prepared.preprocess

    def system_name(self, name: str) -> str:
        """The name ``name``'s files go under in this context (``hard_matched`` for ``hard``, say)."""
        return self.names.get(name, name)

    @property
    def task_kinds(self) -> dict[str, str]:
        """What each tabular task predicts ('binary', 'regression'; the networks' ``kinds``)."""
        return {t: self.data.kinds[t] for t in self.tasks}

    def recipe(self, tasks: list[str] | None = None, **overrides) -> dict:
        """The base network for ``tasks`` (default all): the tagger, or the tabular shared-bottom MLP."""
        tasks = tasks or list(self.tasks)
        if self.kind == "sequence":
            n_tags = {t: len(self.tasks[t].labels) for t in tasks}
            kwargs = {**self.prepared.base, "n_tags": n_tags, **overrides}
            return {"network": self.prepared.network, "kwargs": kwargs}
        m = self.tabular
        kinds = {t: self.task_kinds[t] for t in tasks}
        kwargs = {"in_dim": self.data.in_dim, "kinds": kinds, "bottom": m.bottom, "tower": m.tower,
                  "dropout": m.dropout, **overrides}  # fmt: skip
        return {"network": "shared_bottom", "kwargs": kwargs}

    def build(self, recipe: dict, seed: int | None = None) -> torch.nn.Module:
        """The recipe's module, initialised from the config's seed, or ``seed`` (pretrained embeddings put
        in)."""
        refuse_too_large(recipe, self.device)
        torch.manual_seed(self.seed if seed is None else seed)
        if recipe["network"] in WORD_VECTOR_NETWORKS and self.prepared.embeddings is not None:
            recipe = {**recipe, "kwargs": {**recipe["kwargs"], "embeddings": self.prepared.embeddings}}
        if recipe["network"] == self.prepared.network and self.prepared.inputs:
            recipe = {**recipe, "kwargs": {**recipe["kwargs"], **self.prepared.inputs}}
        return build_recipe(recipe, import_expert)  # the config's own factory, as a script imports it

    def build_model(self, tasks: list[str] | None = None, **overrides) -> torch.nn.Module:
        return self.build(self.recipe(tasks, **overrides))

    def count_params(self, model, names: list[str] | None = None) -> int:
        """`# Params`: sequence models count the encoder without embeddings (the paper's count: no
        embeddings, no output layers); tabular models count everything."""
        if self.kind == "sequence":
            return encoder_param_count(model, names)
        return sum(p.numel() for n, p in model.named_parameters() if names is None or n in names)


def recipe_bytes(recipe: dict) -> tuple[int, int]:
    """The parameter count and bytes of the network ``recipe`` describes, built on torch's meta device
    (sizes, no memory)."""
    with torch.device("meta"):
        net = build_recipe(recipe, import_expert)
    params = list(net.parameters()) + list(net.buffers())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def device_memory(device: torch.device) -> int:
    """The bytes a network can live in on ``device``: the CUDA device's memory, else this machine's."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_too_large(recipe: dict, device: torch.device) -> None:
    """A ConfigError, with the network's size in bytes, when its parameters alone exceed the memory of
    the device it would train on: an allocation would otherwise fail mid-run with a traceback, or the
    machine would swap. Weights, gradients and optimizer state take more still; those are left to fail
    where they do."""
    try:
        n, size = recipe_bytes(recipe)
    except (NotImplementedError, RuntimeError):  # a network that cannot be built on meta: built for real
        return
    memory = device_memory(torch.device(device))
    if size > memory:
        keys = {"tagger": "'model' (hidden, word_dim, char_*)", "transformer_tagger": "'model.transformer'"}
        keys = keys.get(recipe["network"], "'tabular'")
        raise ConfigError(
            f"the {recipe['network']} network asked for has {n:,} parameters ({size:,} bytes), more than "
            f"the {memory:,} bytes of memory of {device}; make it smaller in {keys}"
        )


def encoder_param_count(model, names: list[str] | None = None) -> int:
    """Encoder parameters excluding embeddings (the paper's `# Params`: no embeddings, no output layers)."""
    return sum(
        p.numel()
        for n, p in model.named_parameters()
        if ".encoder." in f".{n}" and "embed" not in n and (names is None or n in names)
    )


def prepare_data(data: DataConfig, model: ModelConfig, seed: int, run: Path) -> PreparedData:
    """Read the configured data and describe its networks; what was read is logged in ``run``'s
    metrics, and ``preprocess.json`` written there."""
    log = MetricsLog(run)
    if get_dataset(data.dataset).kind == "sequence":
        prepared = _prepare_sequence(data, model, seed, log)
    else:
        prepared = _prepare_tabular(data, seed, log)
    path = paths.preprocess(run)
    if not path.exists():
        write_json_atomic(prepared.preprocess, path)
    return prepared


def _prepare_sequence(d: DataConfig, m: ModelConfig, seed: int, log: MetricsLog) -> PreparedData:
    """Shared word and char vocabularies over every task's training words, and (optionally) GloVe."""
    from sparseshare.data.embeddings import embedding_matrix, load_glove
    from sparseshare.data.sequence import SequenceData, build_shared_vocabs
    from sparseshare.data.sources import get_source, resolve

    if m.transformer is not None and m.transformer.pretrained is not None:
        from sparseshare.experiments.systems.transformer import check_pretrained

        check_pretrained(m.transformer)  # before the data is read: a wrong path is said at once
    raw = read_sequence_tasks(d)
    glove, extra = None, set()
    if m.transformer is not None and m.transformer.pretrained is not None:
        # a tokenizer reads any word: every split's words get a row of the sub-word table (no labels read)
        extra = {w.lower() if d.lower_words else w for t in d.tasks for sp in ("dev", "test")
                 for ws, _ in raw[t][sp] for w in ws}  # fmt: skip
    if d.embeddings:
        src = Path(d.embeddings)
        words, vectors = load_glove(src if src.exists() else resolve(get_source(d.embeddings)))
        if vectors.shape[1] != m.word_dim:
            raise ConfigError(
                f"'model.word_dim' is {m.word_dim} but the embeddings '{d.embeddings}' have "
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
        # the readers emit these schemes: chunk BIO2, ner BIOES, others token tagging (position: Table 6);
        # your own column files as 'columns.spans' says
        spans = d.columns.spans if d.task_sources()[t] == "columns" else None
        metric, scheme = task_kind(t, spans)
        data = SequenceData(t, raw[t], word_vocab, char_vocab, lower_words=d.lower_words, pad_to=d.pad_to)
        tasks[t] = Task(t, data, metric, scheme=scheme)
    for t, task in tasks.items():
        counts = {s: (task.data.num_examples(s), task.data.num_tokens(s)) for s in ("train", "dev", "test")}
        log({"phase": "data", "task": t, "sentences": {s: c[0] for s, c in counts.items()},
             "tokens": {s: c[1] for s, c in counts.items()}})  # fmt: skip
        logger.info(
            "data: %s: %s",
            t,
            ", ".join(f"{s} {n:,} sentences / {k:,} tokens" for s, (n, k) in counts.items()),
        )
    emb = None
    if glove is not None:
        mat, found = embedding_matrix(
            list(word_vocab.itos), glove[0], glove[1], m.word_dim, np.random.default_rng(seed),
            lower=d.lower_words,
        )  # fmt: skip
        emb = torch.from_numpy(mat)
        log({"phase": "data", "embeddings": d.embeddings, "vocab": len(word_vocab), "found": int(found)})
    base = {"n_words": len(word_vocab), "n_chars": len(char_vocab), "word_dim": m.word_dim,
            "char_dim": m.char_dim, "char_filters": m.char_filters, "char_width": m.char_width,
            "hidden": m.hidden, "layers": m.layers, "dropout": m.dropout, "decoder": m.decoder,
            "word_dropout": m.word_dropout}  # fmt: skip
    if not m.packing:  # named only when set, so the recipes (network.json) of packed runs stay as they were
        base["packing"] = False
    network, inputs = "tagger", {}
    if m.transformer is not None:
        from sparseshare.experiments.systems.transformer import NETWORK, transformer_base

        network = NETWORK
        base, inputs = transformer_base(m.transformer, list(word_vocab.itos), m.dropout, m.decoder)
    first = next(iter(tasks.values())).data
    preprocess = {
        "kind": "sequence",
        "lower_words": d.lower_words,
        "max_word_len": first.max_word_len,
        "words": list(word_vocab.itos),
        "chars": list(char_vocab.itos),
        "tasks": {
            t: {"metric": task.key, "scheme": task.scheme, "tags": list(task.labels)}
            for t, task in tasks.items()
        },
    }
    return PreparedData("sequence", tasks, base, preprocess, embeddings=emb, network=network, inputs=inputs)


def _prepare_tabular(d: DataConfig, seed: int, log: MetricsLog) -> PreparedData:
    data = load_tabular(d, seed)
    tasks = {t: Task(t, data.for_tasks([t]), PRIMARY[data.kinds[t]]) for t in d.tasks}
    rows = {s: data.num_examples(s) for s in ("train", "dev", "test")}
    log({"phase": "data", "dataset": d.dataset, "features": data.in_dim, "rows": rows})
    logger.info("data: %s: %d features; %s", d.dataset, data.in_dim,
                ", ".join(f"{s} {n:,} rows" for s, n in rows.items()))  # fmt: skip
    problems = data.problems() if hasattr(data, "problems") else []
    for line in problems:
        logger.warning("data: %s", line)
    if problems:
        log({"phase": "data_problems", "problems": problems})
    preprocess = {
        "kind": "tabular",
        "encoder": data.encoder.to_json() if data.encoder is not None else None,
        "features": data.feature_names,
        "kinds": {t: data.kinds[t] for t in d.tasks},
        "tasks": {t: {"metric": task.key} for t, task in tasks.items()},
    }
    return PreparedData("tabular", tasks, {}, preprocess, data=data)


def read_preprocess(run: Path) -> dict:
    path = paths.preprocess(run)
    if not path.exists():
        raise RunError(f"{run}: no preprocess.json (a run from an older sparseshare: run it again)")
    pre = read_json(path, "preprocessing file")
    kind = pre.get("kind") if isinstance(pre, dict) else None
    if kind not in ("sequence", "tabular") or not isinstance(pre.get("tasks"), (dict, list)):
        raise RunError(
            f"{path}: not a preprocessing file (a mapping with 'kind' and 'tasks'); repair the run with "
            f"'sparseshare run {paths.config(run)} --out {run} --repair'"
        )
    return pre
