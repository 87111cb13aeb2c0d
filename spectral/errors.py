"""One exception family for the whole library.

Every error names what it is about (file, key, shapes) so that a user can act on the message alone.
Subclasses also derive from the matching builtin (ValueError, KeyError, ...) so generic handlers still work.
"""
from __future__ import annotations


class SpectralError(Exception):
    """Base class of every error raised by spectral."""


class TaskSetError(SpectralError, ValueError):
    """A set of task checkpoints cannot form task matrices."""


class EmptyTaskSetError(TaskSetError):
    """No fine-tuned checkpoint was given (T = 0)."""


class MissingKeyError(TaskSetError, KeyError):
    """A parameter present in the base model is missing from a fine-tuned model (or vice versa)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class ShapeMismatchError(TaskSetError):
    """A parameter has a different shape in two checkpoints, or a tensor has the wrong rank."""


class NonFiniteError(TaskSetError):
    """A tensor contains NaN or Inf."""


class DtypeMismatchError(TaskSetError):
    """Checkpoints of one pool mix floating-point dtypes for the same parameter."""


class UnknownMethodError(SpectralError, KeyError):
    """No merging method is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ParameterError(SpectralError, ValueError):
    """A method parameter is unknown or outside its declared range."""


class CheckpointError(SpectralError, ValueError):
    """A checkpoint file cannot be read, or is of an unsupported format or architecture."""


class UntrustedPickleError(CheckpointError):
    """A pickled checkpoint was refused because loading it was not explicitly trusted."""


class TruncatedCheckpointError(CheckpointError):
    """A checkpoint file ends before its declared content (interrupted download or copy)."""


class UnsupportedArchitectureError(CheckpointError):
    """The image tower's shapes match none of open_clip's ViT configurations."""


class ArchitectureMismatchError(CheckpointError):
    """Two checkpoints of one pool (base and a task, or a checkpoint and the declared architecture) disagree."""


class UnsafePickleError(CheckpointError):
    """A trusted pickle still referenced a global outside the loader's allow-list (e.g. ``os.system``)."""


class PoolConfigError(CheckpointError):
    """A pool description (YAML file or directory layout) is malformed or incomplete."""


class MissingTaskError(PoolConfigError, MissingKeyError):
    """A task is named but its checkpoint (or the task itself) is not there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
