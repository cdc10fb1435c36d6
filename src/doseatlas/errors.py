"""The one error hierarchy of doseatlas."""

from __future__ import annotations


class DoseatlasError(Exception):
    """Base class of every error doseatlas raises on purpose."""


class InputFileError(DoseatlasError):
    """A file cannot be used at all (unreadable, a required column missing, ...).

    Parameters
    ----------
    path
        The offending file.
    message
        What is wrong, in words.
    column, line
        Where, when known (line is 1-based, header = line 1).
    """

    def __init__(self, path: str, message: str, *, column: str | None = None, line: int | None = None):
        self.path = str(path)
        self.message = message
        self.column = column
        self.line = line
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        """Picklable (raised in a worker process, re-raised in the caller)."""
        return _input_file_error, (self.path, self.message, self.column, self.line)


def _input_file_error(path: str, message: str, column: str | None, line: int | None) -> InputFileError:
    return InputFileError(path, message, column=column, line=line)


class ConfigError(DoseatlasError, ValueError):
    """An option or parameter has an invalid value."""


class FitError(DoseatlasError):
    """The fitting engine was called with inputs it cannot handle (not a failed fit: that is a status)."""


class SimulationError(DoseatlasError, ValueError):
    """Simulator parameters are inconsistent."""


class OutputDirectoryError(DoseatlasError):
    """The output location cannot be used (not empty and not a doseatlas output, unwritable, a file, ...)."""

    def __init__(self, path: str, message: str):
        self.path = str(path)
        self.message = message
        super().__init__(f"--out {self.path}: {message}")

    def __reduce__(self):
        return OutputDirectoryError, (self.path, self.message)


class ReviewError(DoseatlasError):
    """A run directory or a review database that the review app cannot use (missing, foreign, malformed)."""
