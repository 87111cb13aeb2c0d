"""Named errors of the checkpoint loaders, re-exported from :mod:`spectral.errors` (one family), and the trust hint.

They subclass the shared classes (``CheckpointError``, ``MissingKeyError``) so generic handlers keep working; the
more specific names let the CLI and the pages say exactly what went wrong.
"""
from __future__ import annotations

from spectral.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    MissingTaskError,
    PoolConfigError,
    TruncatedCheckpointError,
    UnsafePickleError,
    UnsupportedArchitectureError,
    UntrustedPickleError,
)

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "CorruptCheckpointError",
    "UnknownCheckpointFormatError",
    "MissingTaskError",
    "PoolConfigError",
    "TruncatedCheckpointError",
    "UnsafePickleError",
    "UnsupportedArchitectureError",
    "UntrustedPickleError",
    "TRUST_HINT",
]


class CorruptCheckpointError(CheckpointError):
    """A file of a recognised format (its magic bytes match) whose content cannot be decoded."""


class UnknownCheckpointFormatError(CheckpointError):
    """A file whose first bytes match none of the checkpoint formats spectral reads."""


#: How a user allows pickled checkpoints; part of every UntrustedPickleError message.
TRUST_HINT = (
    "Unpickling can run arbitrary code, so pickled checkpoints load only when you trust their source: "
    "pass --trust-pickle on the command line, tick 'Trust pickled checkpoints' in the dashboard's sidebar, "
    "or call with trust_pickle=True."
)
