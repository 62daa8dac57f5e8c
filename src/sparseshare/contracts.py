"""The contracts a user's objects meet, as ``typing.Protocol``s, and checks that fail in one line.

- :class:`MultiTaskModel`: a base network with a head per task. The sharing mechanisms (hard, sparse)
  wrap any object that fits it, e.g. a ``torch.nn.TransformerEncoder`` with two token-level heads.
- :class:`Mechanism`: what the trainer drives: a loss, predictions and an optimizer step per task
  (``HardSharing(model)`` and ``SparseSharing(model, masks)`` make one out of a model; MMoE, PLE and
  PBFS are mechanisms themselves).
- :class:`TaskData`: one task's splits as batches; ``sparseshare.LoaderData`` adapts torch DataLoaders
  and Datasets, and the built-in readers' ``SequenceData`` and ``TabularData`` fit it as they are.

An object that does not fit fails at once with :class:`~sparseshare.errors.ContractError`, one line
naming the missing member, instead of an AttributeError from deep inside training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from sparseshare.errors import ContractError


@runtime_checkable
class MultiTaskModel(Protocol):
    """A multi-task network: ``forward(batch, task)`` runs the shared part and ``task``'s head.

    Optional members, used when present: ``task_predict(output, batch, task)`` (predictions the metric
    scores; default: the output itself), ``task_parameter_names(task)`` (the parameters ``task``'s loss
    reaches; default: found by the pipeline with a forward and backward per task on one training batch,
    training/task_parameters.py) and ``joint_loss(batch, weights)`` (Σ_t w_t L_t with what tasks share
    computed once).
    """

    tasks: Sequence[str]

    def forward(self, batch: Any, task: str) -> Any: ...

    def task_loss(self, output: Any, batch: Any, task: str) -> torch.Tensor: ...


@runtime_checkable
class Mechanism(Protocol):
    """A trainable multi-task module: a loss, predictions and an optimizer step per task.

    ``step(optimizer, task)`` updates what ``task`` may change (``task=None``: after a joint loss over
    all tasks). ``task_parameter_names(task)`` names the parameters ``task``'s loss reaches.
    """

    tasks: Sequence[str]

    def loss(self, batch: Any, task: str) -> torch.Tensor: ...

    def predict(self, batch: Any, task: str) -> Any: ...

    def step(self, optimizer: torch.optim.Optimizer, task: str | None) -> None: ...

    def task_parameter_names(self, task: str) -> list[str]: ...


@runtime_checkable
class TaskData(Protocol):
    """One task's data: batches of a split ('train', 'dev', 'test') and the number of examples in it.

    Optional: ``targets(batch, task)`` (what the metric compares predictions with) and
    ``num_batches(split, batch_size)`` (steps in an epoch; default ceil(examples / batch_size)).
    """

    def batches(
        self, split: str, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterable[Any]: ...

    def num_examples(self, split: str) -> int: ...


_MODEL = {
    "forward": "forward(batch, task)",
    "task_loss": "task_loss(output, batch, task) -> scalar loss",
}
_MECHANISM = {
    "loss": "loss(batch, task)",
    "predict": "predict(batch, task)",
    "step": "step(optimizer, task)",
    "task_parameter_names": "task_parameter_names(task)",
    "parameters": "parameters() (a torch.nn.Module)",
    "state_dict": "state_dict() (a torch.nn.Module)",
}
_DATA = {
    "batches": "batches(split, batch_size, shuffle, generator)",
    "num_examples": "num_examples(split)",
}


# where the pipeline keeps the parameters each task's loss was found to reach (training/task_parameters.py)
FOUND_TASK_PARAMETERS = "found_task_parameters"


def declared_task_parameters(model: Any):
    """``task -> names`` of the parameters each task's loss reaches: the model's own
    ``task_parameter_names`` (it wins), else what a forward and backward per task found, else None."""
    own = getattr(model, "task_parameter_names", None)
    if callable(own):
        return own
    found = getattr(model, FOUND_TASK_PARAMETERS, None)
    return (lambda task: list(found[task])) if found else None


def _missing(obj: Any, members: Mapping[str, str]) -> str | None:
    for name, signature in members.items():
        if not callable(getattr(obj, name, None)):
            return signature
    return None


def check_tasks_attribute(obj: Any, what: str) -> list[str]:
    """``obj.tasks`` as a list of distinct, non-empty task names."""
    tasks = getattr(obj, "tasks", None)
    if tasks is None:
        raise ContractError(f"{type(obj).__name__} does not fit the {what} contract: it lacks `tasks`")
    if isinstance(tasks, str) or not isinstance(tasks, Iterable):
        raise ContractError(f"{type(obj).__name__}.tasks must be a list of task names, got {tasks!r}")
    tasks = list(tasks)
    bad = [t for t in tasks if not isinstance(t, str) or not t]
    if bad or not tasks or len(set(tasks)) != len(tasks):
        raise ContractError(f"{type(obj).__name__}.tasks must be distinct non-empty names, got {tasks!r}")
    return tasks


def _check(obj: Any, what: str, members: Mapping[str, str], hint: str) -> None:
    check_tasks_attribute(obj, what)
    missing = _missing(obj, members)
    if missing:
        raise ContractError(
            f"{type(obj).__name__} does not fit the {what} contract: it lacks `{missing}` ({hint})"
        )


def check_model(obj: Any) -> None:
    """Raise ContractError (one line) unless ``obj`` fits :class:`MultiTaskModel`."""
    _check(obj, "model", _MODEL, "see sparseshare.MultiTaskModel")
    if not isinstance(obj, torch.nn.Module):
        raise ContractError(f"{type(obj).__name__} must be a torch.nn.Module to be trained")


def check_mechanism(obj: Any) -> None:
    """Raise ContractError (one line) unless ``obj`` fits :class:`Mechanism`."""
    _check(obj, "mechanism", _MECHANISM, "wrap a model in sparseshare.HardSharing or SparseSharing")


def is_mechanism(obj: Any) -> bool:
    return _missing(obj, _MECHANISM) is None and getattr(obj, "tasks", None) is not None


def check_task_data(obj: Any, task: str = "") -> None:
    """Raise ContractError (one line) unless ``obj`` fits :class:`TaskData`."""
    missing = _missing(obj, _DATA)
    if missing:
        where = f"task '{task}': " if task else ""
        raise ContractError(
            f"{where}{type(obj).__name__} does not fit the task-data contract: it lacks `{missing}` "
            f"(use sparseshare.LoaderData for torch DataLoaders or Datasets)"
        )
