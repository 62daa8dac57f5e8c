"""The settings of training and of the IMP search: the config sections ``train`` and ``search``.

Plain dataclasses that check their own values, importing no torch: an experiment config is read and
validated without loading a model's code. The names they accept are the trainer's optimizers, the task
samplers (training/samplers.py) and the pruning strategies (pruning/magnitude.py); tests/training check
that these lists equal the implementations' registries.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from sparseshare.errors import ConfigError
from sparseshare.pruning.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE

SAMPLER_NAMES = ("proportional", "uniform", "round_robin")  # training/samplers.py's SAMPLERS
STRATEGY_NAMES = ("global", "layerwise")  # pruning/magnitude.py's STRATEGIES
METHOD_NAMES = ("imp", "oneshot", "snip", "random")  # training/search.py's mask finders
OPTIMIZERS = ("sgd", "adam")
# train.weighting (training/weighting.py's WEIGHTINGS), and torchjd.<one of JD_AGGREGATORS>
WEIGHTING_NAMES = ("equal", "uw", "dwa", "gradnorm", "pcgrad")
JD_AGGREGATORS = (
    "UPGrad", "MGDA", "DualProj", "IMTLG", "AlignedMTL", "ConFIG", "GradDrop", "PCGrad", "Mean", "Sum",
    "Random",
)  # fmt: skip
PRECISIONS = ("fp32", "bf16", "fp16")  # the trainer's autocast dtypes (training/trainer.py's AUTOCAST)
# bounds past which a value cannot be meant (a slip of the exponent): epochs and patience, and rows per
# batch; refused before any data is read
MAX_EPOCHS = 10**6
MAX_BATCH = 2**24


def check_problems(problems: list[str]) -> None:
    """Raise every problem of a settings object at once, one line each."""
    if problems:
        raise ConfigError("\n".join(problems))


def _outside(key: str, value, lo: int, hi: int) -> list[str]:
    """A problem line when ``value`` is below ``lo`` or above the absurd ``hi``, else none."""
    if value < lo:
        return [f"'{key}' must be >= {lo}, got {value}"]
    return [f"'{key}' must be <= {hi:_}, got {value:_}"] if value > hi else []


def _finite_first(where: str, settings, out: list[str]) -> list[str]:
    """``out`` led by a line for each float setting (or float in a mapping) that is NaN or infinite, which
    then replaces that key's range lines: the Python API is not checked by the config schema, and
    ``lr=inf`` would otherwise train on NaN losses."""
    lines, keys = [], set()
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        for sub, v in value.items() if isinstance(value, dict) else [("", value)]:
            if isinstance(v, float) and not math.isfinite(v):
                key = f"{where}.{f.name}" + (f".{sub}" if sub else "")
                lines.append(f"'{key}' must be a finite number, got {v!r}")
                keys |= {f"'{where}.{f.name}'", f"'{where}.{f.name}."}
    return lines + [p for p in out if not any(p.startswith(k) for k in keys)]


@dataclass
class TrainSettings:
    """How a system trains; also the config section ``train``.

    ``lr_decay``: lr_e = lr / (1 + lr_decay * e) (Ma and Hovy 2016). ``patience``: epochs without a better
    dev score before stopping (0: never stop early). ``joint``: all tasks every step (Σ_t w_t L_t with
    ``loss_weights``, default 1) instead of sampling a task per step with ``sampler``. ``bucket``
    (sequence data): training batches drawn from pools of ``bucket`` shuffled batches sorted by length,
    so padding stays small (0, the default and the papers' protocol: a plain shuffle).

    Every float must be finite (refused when made, from Python too); epoch counts are at most
    ``MAX_EPOCHS`` (10^6) and batch sizes at most ``MAX_BATCH`` (2^24), past which a value is a slip.
    """

    epochs: int = 30  # the most epochs a system trains (patience may stop it sooner); at most 10^6
    patience: int = 5
    batch_size: int = 10  # training examples (sentences, or table rows) per step
    optimizer: str = "sgd"  # 'sgd' or 'adam'
    lr: float = 0.1  # the initial learning rate (see lr_decay)
    momentum: float = 0.0  # SGD momentum, in [0, 1) ('adam' ignores it)
    weight_decay: float = 0.0  # L2 penalty: the optimizer's weight_decay, on every trained parameter
    lr_decay: float = 0.05
    clip: float | None = 5.0  # max L2 norm of the gradients (all parameters together), each step; null: none
    # the task trained at each step (when not joint): 'proportional' (P(task) to its training size),
    # 'uniform' or 'round_robin'
    sampler: str = "proportional"
    joint: bool = False
    # task -> w_t of the joint loss (others 1): with joint, and in the tabular joint-loss systems (all but
    # sparse sharing); the warmup and the IMP search ignore it
    loss_weights: dict[str, float] | None = None
    # how a step's per-task losses become its gradient (training/weighting.py): 'equal' (Σ_t w_t L_t),
    # 'uw' (uncertainty weighting), 'dwa' (dynamic weight average), and for joint steps only 'gradnorm',
    # 'pcgrad' and torchjd's aggregators as 'torchjd.UPGrad', 'torchjd.MGDA', ...; the warmup and the
    # IMP search ignore it
    weighting: str = "equal"
    gradnorm_alpha: float = 1.5  # GradNorm's α (Chen et al. 2018, Eq. 2), >= 0; other weightings ignore it
    eval_batch_size: int = 100  # examples per batch when scoring dev and test (it changes no score)
    bucket: int = 0
    # 'fp32'; 'bf16' or 'fp16': the training forward and loss under autocast to that dtype (fp16 with a
    # gradient scaler that skips steps whose gradients overflow); dev and test are scored in fp32
    precision: str = "fp32"
    # the optimizer's fused kernel (Adam, SGD: one kernel updates every parameter) where the device has
    # one (CUDA; the CPU since torch 2.4), else its multi-tensor one; the same update up to rounding
    fused: bool = False
    # the training forward and loss through torch.compile, with dynamic shapes: batches of other sizes
    # and lengths reuse the compiled graphs (a CRF decoder's loop over time still compiles one per
    # sentence length, up to torch's recompile limit); the first steps pay for the compilation
    compile: bool = False
    drop_last: bool = False  # each task's short last training batch of a pass is left out (fixed shapes)

    def __post_init__(self) -> None:
        """A NaN or infinite value is refused when made (from Python too; a config never gets here with
        one): nothing sensible trains on it."""
        check_problems(_finite_first("train", self, []))

    def problems(self, where: str = "train") -> list[str]:
        """One line per value out of range or unknown, naming its key."""
        out = []
        if self.sampler not in SAMPLER_NAMES:
            out.append(f"'{where}.sampler': unknown sampler '{self.sampler}'; valid: {sorted(SAMPLER_NAMES)}")
        if self.optimizer not in OPTIMIZERS:
            out.append(
                f"'{where}.optimizer': unknown optimizer '{self.optimizer}'; valid: {list(OPTIMIZERS)}"
            )
        if self.precision not in PRECISIONS:
            out.append(
                f"'{where}.precision': unknown precision {self.precision!r}; valid: {list(PRECISIONS)}"
            )
        out += self.weighting_problems(where)
        for key, lo, hi in (
            ("epochs", 1, MAX_EPOCHS), ("batch_size", 1, MAX_BATCH), ("eval_batch_size", 1, MAX_BATCH),
            ("patience", 0, MAX_EPOCHS), ("bucket", 0, MAX_EPOCHS),
        ):  # fmt: skip
            out += _outside(f"{where}.{key}", getattr(self, key), lo, hi)
        if not self.lr > 0:
            out.append(f"'{where}.lr' must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            out.append(f"'{where}.momentum' must be in [0, 1), got {self.momentum}")
        for key in ("weight_decay", "lr_decay"):
            if not getattr(self, key) >= 0:
                out.append(f"'{where}.{key}' must be >= 0, got {getattr(self, key)}")
        if self.clip is not None and not self.clip > 0:
            out.append(f"'{where}.clip' must be > 0 (or null: no clipping), got {self.clip}")
        bad = {t: w for t, w in (self.loss_weights or {}).items() if not w >= 0}
        if bad:
            out.append(f"'{where}.loss_weights': weights must be >= 0, got {bad}")
        return _finite_first(where, self, out)

    def check(self, where: str = "train") -> None:
        check_problems(self.problems(where))

    def gradient_weighting(self) -> bool:
        """Whether ``weighting`` makes the step's gradient from the tasks' gradients (joint steps only)."""
        return self.weighting in ("gradnorm", "pcgrad") or self.weighting.startswith("torchjd.")

    def weighting_problems(self, where: str = "train") -> list[str]:
        """An unknown weighting; one that compares gradients under fp16 (its gradient scaler scales one
        loss, not each task's)."""
        w = self.weighting
        known = w in WEIGHTING_NAMES or (w.startswith("torchjd.") and w[8:] in JD_AGGREGATORS)
        if not known:
            valid = [*WEIGHTING_NAMES, *(f"torchjd.{n}" for n in JD_AGGREGATORS)]
            return [f"'{where}.weighting': unknown weighting {w!r}; valid: {valid}"]
        if not self.gradnorm_alpha >= 0:
            return [f"'{where}.gradnorm_alpha' must be >= 0, got {self.gradnorm_alpha}"]
        if self.gradient_weighting() and self.precision == "fp16":
            return [
                f"'{where}.weighting': {w} makes the gradient from each task's, which fp16's gradient "
                f"scaler does not scale; use train.precision bf16 or fp32"
            ]
        return []

    def replace(self, **changes) -> TrainSettings:
        """A copy with ``changes`` (the settings themselves are never modified)."""
        return dataclasses.replace(self, **changes)


@dataclass
class SearchSettings:
    """The IMP search (Algorithm 1); also the config section ``search``.

    ``alpha``: fraction of the remaining prunable weights pruned per level; ``min_density``: S, the search
    stops once a level's density is <= S. ``include``/``exclude``: name globs of the prunable parameters
    (default: weight tensors of 2+ dims of the encoder; never embeddings, biases, heads or CRF
    transitions). ``force_density``: task -> the level nearest this density is selected instead of the
    best dev score (Figure 4).

    ``lr_decay``: the learning-rate decay within a level (None: ``train.lr_decay``, the systems' own).

    ``preset`` names a protocol (null: none), ``paper`` (Sun et al.'s) or ``fast`` (a small CPU budget),
    whose values stand in for the ``search`` *and* ``train`` keys a config
    does not set (resolved with the config, experiments/config/experiment.py; results.md lists every key
    where a run departs from its preset):

    ``paper``, the protocol of Sun et al. (AAAI 2020) as the paper and the authors' released scripts
    (github.com/choosewhatulike/sparse-sharing: run_conll03.sh, train_single.py, train_mtl.py,
    src/prune.py, src/trainer.py) state it:

    - search.warmup_epochs 20: "we set the MTW steps w = 20, 10, 10 epochs in Exp1, Exp2, Exp3" (paper,
      Details in Subnets Generation; 10 for Exp3: set it in that config);
    - search.alpha 0.1088, min_density 0.1: run_conll03.sh single ``--pruning_iter 20 --final_rate 0.1``,
      i.e. prune.py's ``one_rate = 1 - final_rate ** (1 / pruning_iter)`` = 0.10875 per level, so level
      n keeps 10^(-n/20), Table 4's densities (the paper's text rounds it to "α = 0.1"); 0.1088 so that
      level 20 lands at <= 10% whatever the rounding of weight counts (0.1087 would run a 21st level);
    - search.strategy global: "we use global pruning" (paper), ``prune_global`` in prune.py;
    - search.epochs_per_level 100, search.patience 0: run_conll03.sh single ``--epochs 100``, each level
      a fastNLP Trainer of ``n_epochs=args.epochs`` with no early stopping; the level's best-dev weights
      are pruned (fastNLP loads the best model at the end), as here;
    - search.lr_decay 0.05: train_single.py's ``LambdaLR(optimizer, lambda ep: 1 / (1 + 0.05 * ep))``
      within a level (Ma and Hovy 2016);
    - train.optimizer sgd, train.lr 0.1, train.momentum 0.9: Table 2 "Learning rate 0.1", SGD; both
      scripts ``--optim "sgd(lr=0.1, momentum=0.9)"``;
    - train.batch_size 10: Table 2 "Mini-batch size 10", ``--batch_size 10``;
    - train.epochs 100, train.patience 0: run_conll03.sh mtl ``--epochs 100`` ("train these subnets ...
      until convergence", paper); the authors' MTL trainer runs every epoch and keeps the best (on the
      test set, src/trainer.py; here on dev);
    - train.lr_decay 0.0: run_conll03.sh mtl ``--scheduler "fix"`` (a constant learning rate; the
      multi-task warmup is a run of that trainer too, so the warmup uses it);
    - train.clip 5.0: train_single.py ``GradientClipCallback(clip_type="norm", clip_value=5)`` (the MTL
      trainer clips by value, ``clip_grad_value_(..., 5)``; here by norm everywhere).

    Not in the preset, because they are the model's or the paper and the scripts disagree: dropout 0.5
    (Table 2; ``model.dropout``), the BiLSTM depth (the paper: 1 layer in Exp1; the scripts ``--n_layer
    2``), 100-d GloVe (``data.embeddings``), the task sampler (the paper: proportional, our default; the
    MTL trainer: a shuffled round robin until each task's data is used up), and fastNLP's length
    buckets (``train.bucket`` is another bucketing scheme).

    ``fast``: the budget of this repository's CPU runs (configs/exp1_conll03.yaml): 4 warmup epochs,
    alpha 0.2 down to 30%, at most 2 epochs per level (patience 1); the train section is the config's.
    """

    PRESETS: ClassVar[dict[str, dict[str, dict]]] = {
        "paper": {
            "search": {"warmup_epochs": 20, "epochs_per_level": 100, "patience": 0, "alpha": 0.1088,
                       "min_density": 0.1, "strategy": "global", "lr_decay": 0.05},
            "train": {"epochs": 100, "patience": 0, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                      "lr_decay": 0.0, "batch_size": 10, "clip": 5.0},
        },
        "fast": {
            "search": {"warmup_epochs": 4, "epochs_per_level": 2, "patience": 1, "alpha": 0.2,
                       "min_density": 0.3},
        },
    }  # fmt: skip

    preset: str | None = None
    # epochs of the multi-task warmup (the dense network, all tasks, no early stopping): θ^(w), the rewind
    # point of every level (0: θ^(0)); the _matched systems train this many epochs more
    warmup_epochs: int = 20
    # the most epochs one IMP level trains (one task, under the level's mask, from θ^(w)); its best-dev
    # weights are pruned
    epochs_per_level: int = 3
    patience: int = 2  # epochs without a better dev score before a level stops (0: never stop early)
    alpha: float = 0.1
    min_density: float = 0.1
    # 'global' (alpha of the remaining weights, ranked by magnitude across all prunable tensors) or
    # 'layerwise' (alpha of each tensor's)
    strategy: str = "global"
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    force_density: dict[str, float] = field(default_factory=dict)
    lr_decay: float | None = None
    # the mask finder (training/search.py): 'imp' (Algorithm 1: each level prunes its own trained
    # weights), or a score fixed at θ^(w) ranked down the same density ladder: 'oneshot' (|w|), 'snip'
    # (|g ⊙ w|, Lee et al. 2019) or 'random' (a seeded random ranking)
    method: str = "imp"

    def __post_init__(self) -> None:
        """A NaN or infinite value is refused when made (from Python too; a config never gets here with
        one): nothing sensible trains on it."""
        check_problems(_finite_first("search", self, []))

    def problems(self, where: str = "search") -> list[str]:
        """One line per value out of range or unknown, naming its key."""
        out = []
        if self.preset is not None and self.preset not in self.PRESETS:
            out.append(f"'{where}.preset': unknown preset {self.preset!r}; valid: {sorted(self.PRESETS)}")
        if not 0 < self.alpha < 1:
            out.append(f"'{where}.alpha' must be in (0, 1), got {self.alpha}")
        if not 0 < self.min_density <= 1:
            out.append(f"'{where}.min_density' must be in (0, 1], got {self.min_density}")
        if self.strategy not in STRATEGY_NAMES:
            out.append(f"'{where}.strategy': unknown '{self.strategy}'; valid: {sorted(STRATEGY_NAMES)}")
        if self.method not in METHOD_NAMES:
            out.append(f"'{where}.method': unknown '{self.method}'; valid: {list(METHOD_NAMES)}")
        for key, lo in (("warmup_epochs", 0), ("epochs_per_level", 1), ("patience", 0)):
            out += _outside(f"{where}.{key}", getattr(self, key), lo, MAX_EPOCHS)
        if not self.include:
            out.append(f"'{where}.include': name at least one glob of prunable parameters")
        if self.lr_decay is not None and not self.lr_decay >= 0:
            out.append(f"'{where}.lr_decay' must be >= 0 (or null: train.lr_decay), got {self.lr_decay}")
        for task, d in self.force_density.items():
            if not 0 < d <= 1:
                out.append(f"'{where}.force_density.{task}' must be in (0, 1] (a fraction kept), got {d}")
        return _finite_first(where, self, out)

    def check(self, where: str = "search") -> None:
        check_problems(self.problems(where))

    def replace(self, **changes) -> SearchSettings:
        return dataclasses.replace(self, **changes)
