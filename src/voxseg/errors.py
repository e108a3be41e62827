"""Exceptions raised by voxseg.

Each error also subclasses the builtin a user would naturally catch, so
``except ValueError`` keeps working for code that does not know voxseg.
The command-line interface turns any :class:`VoxsegError` into a one-line
message and exit status 2.
"""

__all__ = [
    "VoxsegError",
    "InputNotFoundError",
    "FormatError",
    "ParameterError",
    "OutputExistsError",
    "OutputError",
    "PipelineError",
    "VolumeTooLargeError",
]


class VoxsegError(Exception):
    """Base class of every error voxseg raises on purpose."""


class InputNotFoundError(VoxsegError, FileNotFoundError):
    """An input path does not exist."""


class FormatError(VoxsegError, ValueError):
    """A file cannot be read as a volume (corrupt, unknown format, bad axes)."""


class ParameterError(VoxsegError, ValueError):
    """A parameter has a wrong value (spacing, channel, diameter, ...)."""


class OutputExistsError(VoxsegError, FileExistsError):
    """An output exists and ``overwrite`` was not requested."""


class OutputError(VoxsegError, OSError):
    """An output cannot be written (permissions, full disk, ...)."""


class PipelineError(VoxsegError, ValueError):
    """A pipeline file or pipeline definition is invalid."""


class VolumeTooLargeError(VoxsegError, MemoryError):
    """A volume does not fit in memory; the chunked path is needed."""
