"""A task: its data (anything fitting :class:`~sparseshare.contracts.TaskData`), metric and targets.

``Task.from_loaders("ner", train=DataLoader(...), dev=DataLoader(...), metric="f1", scheme="bioes")``
takes plain torch DataLoaders (or Datasets, batched with the trainer's batch size) per split; the
built-in readers' ``SequenceData`` and ``TabularData`` are task data as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sparseshare.contracts import check_task_data
from sparseshare.data.readers import TASK_NAME
from sparseshare.errors import ContractError
from sparseshare.metrics import Metric, get_metric

_TARGET_KEYS = ("y", "target", "targets", "label", "labels")


def default_target(batch: Any, task: str) -> Any:
    """The targets of ``task`` in a batch by convention: a mapping's ``task``/``y``/``target``/``label(s)``
    entry, the last element of a tuple or list batch, or a ``.y`` attribute; a mapping keyed by task
    names is indexed by ``task``."""
    value, found = None, False
    if isinstance(batch, Mapping):
        for key in (task, *_TARGET_KEYS):
            if key in batch:
                value, found = batch[key], True
                break
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        value, found = batch[-1], True
    elif hasattr(batch, "y"):
        value, found = batch.y, True
    if not found:
        raise ContractError(
            f"task '{task}': cannot find the targets in a batch of type {type(batch).__name__}; "
            f"give Task(target=lambda batch: ...)"
        )
    return value[task] if isinstance(value, Mapping) and task in value else value


class LoaderData:
    """Task data from torch DataLoaders or Datasets, one per split (``train``, ``dev``, ``test``, ...).

    A DataLoader (or any re-iterable of batches that is not a Dataset) is iterated as it is: its own batch
    size, shuffling and collation apply. A Dataset (or a list of examples) is batched with the trainer's
    batch size, shuffled with the trainer's seeded generator for training, and collated by ``collate_fn``.
    """

    def __init__(self, train: Any = None, dev: Any = None, test: Any = None, *, collate_fn=None, **splits):
        self.splits = {
            s: v for s, v in {"train": train, "dev": dev, "test": test, **splits}.items() if v is not None
        }
        if not self.splits:
            raise ContractError("LoaderData needs at least one split (train=..., dev=..., test=...)")
        self.collate_fn = collate_fn
        for split, src in self.splits.items():
            if not isinstance(src, Iterable) and not isinstance(src, Dataset):
                raise ContractError(
                    f"split '{split}': {type(src).__name__} is neither a DataLoader nor a Dataset"
                )

    def _source(self, split: str):
        try:
            return self.splits[split]
        except KeyError:
            raise ContractError(
                f"this task's data has no '{split}' split; it has {sorted(self.splits)}"
            ) from None

    @staticmethod
    def _is_dataset(src: Any) -> bool:
        return isinstance(src, (Dataset, list, tuple)) and not isinstance(src, DataLoader)

    def batches(
        self, split: str, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Any]:
        src = self._source(split)
        if self._is_dataset(src):
            src = DataLoader(
                src, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=self.collate_fn
            )
        return iter(src)

    def num_examples(self, split: str) -> int:
        src = self._source(split)
        sized = src if self._is_dataset(src) else getattr(src, "dataset", src)
        try:
            return len(sized)
        except TypeError:
            raise ContractError(f"split '{split}': its length is unknown (an IterableDataset?)") from None

    def num_batches(self, split: str, batch_size: int) -> int:
        src = self._source(split)
        if self._is_dataset(src):
            return math.ceil(len(src) / batch_size)
        try:
            return len(src)
        except TypeError:
            raise ContractError(f"split '{split}': its number of batches is unknown") from None


def num_batches(data: Any, split: str, batch_size: int) -> int:
    """Batches in an epoch of ``split``: the data's own count, else ceil(examples / batch_size)."""
    own = getattr(data, "num_batches", None)
    if callable(own):
        return int(own(split, batch_size))
    return math.ceil(data.num_examples(split) / batch_size)


@dataclass
class Task:
    """One task of a multi-task problem.

    ``metric``: a name from :mod:`sparseshare.metrics` or a callable ``fn(predictions, targets)``
    (returning a number or a dict of numbers; ``metric_name`` names the primary one). ``scheme`` (span F1)
    and ``labels`` (id -> tag string) are for tagging tasks; data with a ``labels`` attribute supplies
    them. ``target(batch)`` picks the targets from a batch (default: the data's ``targets(batch, task)``,
    else :func:`default_target`). ``higher_is_better`` defaults from the metric (False for mse/mae).
    """

    name: str
    data: Any
    metric: str | Callable = "accuracy"
    scheme: str | None = None
    labels: Sequence[str] | None = None
    higher_is_better: bool | None = None
    target: Callable[[Any], Any] | None = None
    metric_name: str | None = None
    _metric: Metric = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not TASK_NAME.fullmatch(self.name):
            raise ContractError(
                f"task name {self.name!r}: use letters, digits, '_' and '-' (it names files and modules)"
            )
        check_task_data(self.data, self.name)
        if self.labels is None:
            self.labels = getattr(self.data, "labels", None)
        self._metric = get_metric(
            self.metric,
            scheme=self.scheme,
            labels=self.labels,
            higher_is_better=self.higher_is_better,
            name=self.metric_name,
        )
        self.higher_is_better = self._metric.higher_is_better

    @classmethod
    def from_loaders(
        cls, name: str, train: Any = None, dev: Any = None, test: Any = None, *, collate_fn=None, **kw
    ) -> Task:
        """A task from torch DataLoaders or Datasets per split (see :class:`LoaderData`)."""
        return cls(name, LoaderData(train, dev, test, collate_fn=collate_fn), **kw)

    @property
    def key(self) -> str:
        """The name of the primary metric (what selection compares)."""
        return self._metric.name

    def targets(self, batch: Any) -> Any:
        if self.target is not None:
            return self.target(batch)
        own = getattr(self.data, "targets", None)
        if callable(own):
            return own(batch, self.name)
        return default_target(batch, self.name)

    def score(self, predictions: Any, targets: Any) -> dict[str, float]:
        """Every value of the metric; ``[self.key]`` is the primary one."""
        return self._metric(predictions, targets)

    def signed(self, value: float) -> float:
        """``value`` oriented so that higher is better."""
        return value if self.higher_is_better else -value


def as_tasks(tasks: Mapping[str, Task] | Sequence[Task] | Task) -> dict[str, Task]:
    """Tasks keyed by name, from a mapping, a sequence or a single task."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    if isinstance(tasks, Mapping):
        out = dict(tasks)
        for k, t in out.items():
            if not isinstance(t, Task) or t.name != k:
                raise ContractError(f"tasks['{k}'] must be a sparseshare.Task named '{k}'")
        return out
    out = {}
    for t in tasks:
        if not isinstance(t, Task):
            raise ContractError(f"expected sparseshare.Task objects, got {type(t).__name__}")
        if t.name in out:
            raise ContractError(f"two tasks are named '{t.name}'")
        out[t.name] = t
    if not out:
        raise ContractError("no tasks given")
    return out


def stage(data: Any, device: torch.device | str) -> None:
    """Ask task data to keep its tensors on ``device`` (the built-in data can: batches are then made
    there, with no host-to-device copy per batch); other data are moved batch by batch."""
    own = getattr(data, "stage", None)
    if callable(own):
        own(device)


def move_batch(batch: Any, device: torch.device | str) -> Any:
    """``batch`` on ``device``: its ``to(device)`` if it has one, else tensors inside tuples, lists and
    mappings moved (other values kept)."""
    if torch.is_tensor(batch) or callable(getattr(batch, "to", None)):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return (
            type(batch)({k: move_batch(v, device) for k, v in batch.items()})
            if isinstance(batch, dict)
            else {k: move_batch(v, device) for k, v in batch.items()}
        )
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(move_batch(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_batch(v, device) for v in batch)
    return batch
