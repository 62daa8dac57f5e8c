"""The config sections of the models (``model``, ``tabular``), of PBFS (``pbfs``) and of the papers'
numbers (``paper``); ``train`` and ``search`` are the training settings themselves."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparseshare.code_reference import reference_problem
from sparseshare.experiments.config.checks import MAX_COUNT, MAX_WIDTH, bounded, out_of_range


@dataclass
class TransformerConfig:
    """A transformer encoder in place of the char-CNN + BiLSTM (Hugging Face transformers,
    ``sparseshare[hf]``; models/hf_tagger.py). IMP prunes its attention and feed-forward matrices (the
    search's default globs leave out embeddings, biases and decoders). Without ``pretrained``: a BERT with
    random weights over the run's word vocabulary, one token per word, of the sizes below; with it, that
    model's own config, weights and tokenizer, each word's tag on its first sub-word."""

    # a directory save_pretrained wrote (or a hub name, where the hub can be reached): its config, weights
    # and tokenizer; the sizes below are then the model's own and are left unset
    pretrained: str | None = None
    hidden: int | None = None  # the random BERT's hidden size (None: 128)
    layers: int | None = None  # its layers (None: 2)
    heads: int | None = None  # its attention heads; must divide hidden (None: 2)
    intermediate: int | None = None  # its feed-forward size (None: 4 x hidden)
    max_positions: int | None = None  # its positions: the longest sentence, in words, it reads (None: 256)
    dropout: float = 0.1  # the encoder's hidden and attention dropout (BERT's 0.1)
    max_pieces: int = 4  # sub-words kept per word with a pretrained tokenizer (its first ones)

    SIZES = ("hidden", "layers", "heads", "intermediate", "max_positions")
    DEFAULTS = {"hidden": 128, "layers": 2, "heads": 2, "intermediate": None, "max_positions": 256}

    def sizes(self) -> dict[str, int]:
        """The random BERT's sizes, defaults filled in."""
        out = {k: getattr(self, k) if getattr(self, k) is not None else self.DEFAULTS[k] for k in self.SIZES}
        return {**out, "intermediate": out["intermediate"] or 4 * out["hidden"]}

    def problems(self, where: str) -> list[str]:
        out = out_of_range(f"{where}.dropout", self.dropout, 0, 1, hi_open=True)
        out += bounded(f"{where}.max_pieces", self.max_pieces, 1, 64)
        if self.pretrained is not None:
            if not isinstance(self.pretrained, str) or not self.pretrained.strip():
                out.append(f"'{where}.pretrained': a directory or model name, not {self.pretrained!r}")
            given = [k for k in self.SIZES if getattr(self, k) is not None]
            if given:
                out.append(f"'{where}': {given} size a random BERT; a pretrained model has its own sizes")
            return out
        for key in self.SIZES:
            if getattr(self, key) is not None:
                out += bounded(f"{where}.{key}", getattr(self, key), 1, MAX_WIDTH)
        sizes = self.sizes()
        if not out and sizes["hidden"] % sizes["heads"]:
            out.append(f"'{where}.heads': {sizes['heads']} does not divide hidden {sizes['hidden']}")
        return out


@dataclass
class ModelConfig:
    """The sequence tagger; defaults are Table 2 of the sparse-sharing paper (word vectors of 100
    dimensions without pretrained embeddings; with them, their dimension). Sizes are at most 2^20
    (``checks.MAX_WIDTH``), layers at most 1024; a network whose parameters alone exceed the memory of
    the device it trains on is refused, with its size in bytes, before it is allocated."""

    word_dim: int | None = None  # None: the embeddings' dimension (100, Table 2, without embeddings)
    char_dim: int = 30  # the char CNN's character embedding size
    char_filters: int = 30  # the char CNN's filters: each word's char feature size (0: no char CNN)
    char_width: int = 3  # the char CNN's convolution width, in characters
    hidden: int = 200  # BiLSTM hidden units per direction (its output: 2 x hidden)
    layers: int = 1  # BiLSTM layers (the hierarchical system always has at least 2)
    dropout: float = 0.5  # after the embeddings and before the output layer
    decoder: str = "linear"  # 'linear' (Exp1/Exp2) or 'crf' (Exp3)
    word_dropout: float = 0.0  # probability of replacing a training word by <unk>
    # hierarchical system: task -> 1-based BiLSTM layer its decoder reads; empty = POS 1, the others 2
    hierarchy: dict[str, int] = field(default_factory=dict)
    # the BiLSTM on packed sentences (true: the papers' protocol and every committed number); false: unpacked,
    # one dense kernel per direction, 1.2-1.4x the sentences/s on a CPU (bench/throughput.py --unpacked),
    # the same function with other float rounding (every system's BiLSTM: hard, sparse, hierarchical, ...)
    packing: bool = True
    # a transformer encoder instead of the char-CNN + BiLSTM (null: the paper's tagger); word_dim, char_*,
    # hidden, layers and packing are then unused, dropout acts before the decoders
    transformer: TransformerConfig | None = None

    def problems(self, where: str) -> list[str]:
        from sparseshare.models.decoders import DECODERS

        out = self.transformer.problems(f"{where}.transformer") if self.transformer is not None else []
        if self.decoder not in DECODERS:
            out.append(f"'{where}.decoder': unknown decoder '{self.decoder}'; valid: {sorted(DECODERS)}")
        for key in ("dropout", "word_dropout"):
            out += out_of_range(f"{where}.{key}", getattr(self, key), 0, 1, hi_open=True)
        for key, lo, hi in (
            ("char_dim", 1, MAX_WIDTH), ("char_width", 1, MAX_WIDTH), ("hidden", 1, MAX_WIDTH),
            ("layers", 1, MAX_COUNT), ("char_filters", 0, MAX_WIDTH), ("word_dim", 1, MAX_WIDTH),
        ):  # fmt: skip
            out += bounded(f"{where}.{key}", getattr(self, key), lo, hi)
        bad = {t: v for t, v in self.hierarchy.items() if v < 1}
        if bad:
            out.append(f"'{where}.hierarchy': layers are numbered from 1, got {bad}")
        return out


@dataclass
class TabularModelConfig:
    """Sizes of the tabular models (PBFS Section 4.3 defaults). Layer sizes are at most 2^20, counts of
    experts and levels at most 1024; a network too large for the device's memory is refused, with its
    size in bytes, before it is allocated."""

    bottom: list[int] = field(default_factory=lambda: [32, 16, 8])  # single task and shared-bottom MLP
    # hidden sizes of each task's tower (then its output unit): single, shared-bottom (and sparse sharing's),
    # MMoE, CGC, PLE, PBFS
    tower: list[int] = field(default_factory=lambda: [8])
    mmoe_expert: list[int] = field(default_factory=lambda: [4])  # MMoE: 8 experts of 4 units
    ple_expert: list[int] = field(default_factory=lambda: [16])  # CGC/PLE: one layer of 16 units
    pbfs_expert: list[int] = field(default_factory=lambda: [32, 32])  # PBFS: census 2 x 32
    # cross-stitch (Section 4.2-4.3): columns of two 32-unit layers (a unit after each: "two cross-sharing
    # units"), task layers of 32
    cross_stitch: list[int] = field(default_factory=lambda: [32, 32])
    # hidden sizes of the cross-stitch system's task towers (the other systems': tower)
    cross_stitch_tower: list[int] = field(default_factory=lambda: [32])
    num_experts: int = 8  # MMoE
    num_specific: int = 1  # CGC/PLE/PBFS task-specific experts per task
    num_shared: int = 1  # CGC/PLE shared experts; PBFS shared experts per pool
    levels: int = 2  # PLE extraction levels
    # dropout after each hidden layer (bottom and towers) of the single-task, shared-bottom (and sparse
    # sharing's) and cross-stitch networks; MMoE, CGC, PLE and PBFS are built without it
    dropout: float = 0.0
    # experts of your own for MMoE, CGC, PLE and PBFS (tabular and sequence data): "package.module:factory",
    # factory(in_dim, out_dim) -> nn.Module, imported when the run starts (None: MLPs of the sizes above);
    # predict and export of such a run import it only with --trust-code
    expert: str | None = None
    # the width of each such expert's output (None: the last layer of the system's *_expert sizes)
    expert_dim: int | None = None

    def problems(self, where: str) -> list[str]:
        out = []
        for key in (
            "bottom",
            "tower",
            "mmoe_expert",
            "ple_expert",
            "pbfs_expert",
            "cross_stitch",
            "cross_stitch_tower",
        ):
            sizes = getattr(self, key)
            if any(n < 1 for n in sizes):
                out.append(f"'{where}.{key}': layer sizes must be >= 1, got {sizes}")
            if any(n > MAX_WIDTH for n in sizes):
                out.append(f"'{where}.{key}': layer sizes must be <= {MAX_WIDTH:_}, got {sizes}")
            if not sizes and key in ("mmoe_expert", "ple_expert", "pbfs_expert", "cross_stitch"):
                out.append(f"'{where}.{key}': needs at least one layer")
        for key, lo in (("num_experts", 1), ("levels", 1), ("num_specific", 0), ("num_shared", 0)):
            out += bounded(f"{where}.{key}", getattr(self, key), lo, MAX_COUNT)
        if self.num_specific + self.num_shared < 1:
            out.append(f"'{where}': num_specific + num_shared must be >= 1 (every gate needs an expert)")
        out += out_of_range(f"{where}.dropout", self.dropout, 0, 1, hi_open=True)
        if self.expert is not None:
            why = reference_problem(self.expert)
            out += [f"'{where}.expert': {why}"] if why else []
        elif self.expert_dim is not None:
            out.append(f"'{where}.expert_dim': sizes experts of your own; set '{where}.expert' too")
        if self.expert_dim is not None:
            out += bounded(f"{where}.expert_dim", self.expert_dim, 1, MAX_WIDTH)
        return out

    def expert_kwargs(self) -> dict:
        """``expert``/``expert_dim`` for a recipe, only when set (a run without them stores none)."""
        out = {"expert": self.expert} if self.expert is not None else {}
        return {**out, "expert_dim": self.expert_dim} if self.expert_dim is not None else out


@dataclass
class PBFSConfig:
    """PBFS pools (Algorithm 1) and per-task pruning of shared experts (Algorithm 2).

    PBFS's "sparsity" is the fraction pruned (density = 1 - sparsity)."""

    # Algorithm 1's alpha: a task pair joins the first pool whose mean label correlation (SMF) is within
    # alpha of the pair's, else opens a pool of its own (unused with explicit pools); a task whose train
    # labels are constant correlates 0 with every task (a warning names it); tasks sharing no labelled
    # row are never paired
    pool_alpha: float = 0.1
    pools: list[list[str]] | None = None  # explicit pools instead of Algorithm 1
    initial_sparsity: float = 0.1  # mu, pruned at the start
    target_sparsity: float | dict[str, float] = 0.7  # lambda, per task or one value
    end_fraction: float = 0.5  # the schedule reaches lambda at this fraction of training steps
    frequency: int = 100  # steps between pruning updates
    power: float = 3.0  # polynomial decay exponent (cubic, as TF-MOT)
    # 'layerwise' (each shared-expert tensor pruned to the scheduled sparsity, as TF-MOT) or 'global'
    # (the tensors of a task's part of a pool ranked together by magnitude)
    strategy: str = "layerwise"

    def problems(self, where: str) -> list[str]:
        out = out_of_range(f"{where}.end_fraction", self.end_fraction, 0, 1, lo_open=True)
        out += out_of_range(f"{where}.pool_alpha", self.pool_alpha, 0, lo_open=True)
        out += out_of_range(f"{where}.frequency", self.frequency, 1)
        out += out_of_range(f"{where}.power", self.power, 0, lo_open=True)
        out += out_of_range(f"{where}.initial_sparsity", self.initial_sparsity, 0, 1, hi_open=True)
        if self.strategy not in ("layerwise", "global"):
            out.append(f"'{where}.strategy': unknown '{self.strategy}'; valid: ['global', 'layerwise']")
        targets = (
            self.target_sparsity if isinstance(self.target_sparsity, dict) else {"": self.target_sparsity}
        )
        for t, v in targets.items():
            key = f"{where}.target_sparsity" + (f".{t}" if t else "")
            out += out_of_range(key, v, 0, 1, hi_open=True)
            if v < self.initial_sparsity:
                out.append(f"'{key}' ({v}) must be >= '{where}.initial_sparsity' ({self.initial_sparsity})")
        if self.pools is not None and (not self.pools or any(len(p) < 1 for p in self.pools)):
            out.append(f"'{where}.pools': every pool needs at least one task")
        return out


@dataclass
class PaperConfig:
    """The paper's reported numbers, printed beside ours: ``values[system][task][metric]`` (fractions).

    ``reference``: the system the report's paired differences over seeds are taken against. ``scale``:
    metric -> factor our value is multiplied by where it is printed beside the paper's (the paper's
    scale, e.g. ``{mse: 0.04}``), with ``scale_note`` saying why; the other tables keep the raw value."""

    source: str = ""  # the paper and table cited under the comparison table ("Paper: ..."); '' = none
    metrics: dict[str, list[str]] = field(default_factory=dict)  # task -> metrics to report
    # system -> task -> metric -> the paper's number (fractions; MSE/MAE raw); a system not run here is
    # still a row; a sweep point takes its paper.points entry instead, where it has one
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # sweeps: point name ("axis=label,...") -> system -> task -> metric
    points: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    reference: str = "single"
    scale: dict[str, float] = field(default_factory=dict)
    scale_note: str = ""  # why ours is scaled, in the note under the comparison table ('': a generic reason)

    def problems(self, where: str) -> list[str]:
        """The metrics' names; ``reference`` is checked against the system registry with the systems
        (experiments/systems/checks.py)."""
        from sparseshare.metrics import NAMES

        out = []
        for metric, factor in self.scale.items():
            if metric not in NAMES:
                out.append(f"'{where}.scale': unknown metric '{metric}'; valid: {list(NAMES)}")
            out += out_of_range(f"{where}.scale.{metric}", factor, 0, lo_open=True)
        return out


@dataclass
class UnitResources:
    """What one unit asks of a Ray node: CPUs (its torch threads follow) and a share of a GPU."""

    # None: this machine's free cores shared out by --jobs (at least 1; above them, one unit a core)
    cpus: float | None = None
    gpus: float | None = None  # None: none (in ``units``: the default); 0.25 puts four units on a GPU

    def problems(self, where: str) -> list[str]:
        out = out_of_range(f"{where}.cpus", self.cpus, 0, lo_open=True)
        out += out_of_range(f"{where}.gpus", self.gpus, 0)
        if self.gpus is not None and self.gpus > 1 and self.gpus != int(self.gpus):
            out.append(f"'{where}.gpus': above 1 a unit takes whole GPUs, got {self.gpus}")
        return out


@dataclass
class ResourcesConfig(UnitResources):
    """``resources``: what each unit of ``run --jobs N`` asks of Ray (it changes no result). ``units``:
    per unit kind (``warmup``, ``search``, or a system name), the values that differ from the default."""

    units: dict[str, UnitResources] = field(default_factory=dict)

    def problems(self, where: str) -> list[str]:
        out = super().problems(where)
        for name, r in self.units.items():
            out += r.problems(f"{where}.units.{name}")
        return out

    def of(self, unit_kind: str) -> UnitResources:
        """The resources of a unit of this kind (its own entry over the defaults)."""
        own = self.units.get(unit_kind) or UnitResources()
        cpus = own.cpus if own.cpus is not None else self.cpus
        gpus = own.gpus if own.gpus is not None else self.gpus
        return UnitResources(cpus, gpus or 0.0)
