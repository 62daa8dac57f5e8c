"""User-facing errors: the CLI prints them as one line, without a traceback."""


class SparseshareError(Exception):
    """Base class for errors caused by user input (configs, data files, run directories)."""


class ConfigError(SparseshareError):
    """A config key is unknown, mistyped or out of range."""


class DataError(SparseshareError):
    """A data file is malformed; the message names the file, line and fault."""

    def __init__(self, path, line: int | None, fault: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {fault}")
        self.path, self.line, self.fault = path, line, fault

    def __reduce__(self):  # picklable, so that it crosses from a worker process (run --jobs)
        return type(self), (self.path, self.line, self.fault)


class RunError(SparseshareError):
    """A run directory is missing, incomplete, damaged, or would be overwritten."""


class TrainingError(SparseshareError):
    """Training cannot go on: the loss is no longer a finite number (the learning rate, say, is too high)."""


class ContractError(SparseshareError, TypeError):
    """A user's model, mechanism or task data does not fit the contract (names the missing member)."""


class MetricInputError(SparseshareError, ValueError):
    """A metric was given predictions or targets it cannot score (says what it got and what it needs)."""
