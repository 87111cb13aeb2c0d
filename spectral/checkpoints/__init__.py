"""Real checkpoints: the papers' model pools and users' own open_clip fine-tunes, loaded into canonical
open_clip ``visual.*`` weights.

Entry points: :func:`open_pool` (a YAML file or a folder → :class:`CheckpointPool`), :func:`load_checkpoint`
(one file of any supported format), :func:`load_head`, :func:`detect_architecture`. Pickled files need
``trust_pickle=True`` (CLI ``--trust-pickle``, the dashboard's checkbox) and go through a restricted unpickler.
"""
from __future__ import annotations

from spectral.checkpoints.architecture import (
    PAPER_ARCHITECTURES,
    build_image_encoder,
    detect_architecture,
    expected_visual_shapes,
)
from spectral.checkpoints.errors import (
    TRUST_HINT,
    ArchitectureMismatchError,
    CorruptCheckpointError,
    MissingTaskError,
    PoolConfigError,
    TruncatedCheckpointError,
    UnknownCheckpointFormatError,
    UnsafePickleError,
    UnsupportedArchitectureError,
)
from spectral.checkpoints.formats import LoadedCheckpoint, load_checkpoint, read_safetensors, sniff_format
from spectral.checkpoints.headfiles import load_head
from spectral.checkpoints.hf import MissingConfigError, MissingHeadError, read_hf_folder, write_hf_folder
from spectral.checkpoints.keymap import canonicalize
from spectral.checkpoints.pool import (
    CheckpointPool,
    PoolSpec,
    TaskSpec,
    discover_pool,
    open_pool,
    read_pool_yaml,
)
from spectral.checkpoints.hf_pool import HFPool  # noqa: E402 - after pool (it builds on PoolSpec)

__all__ = [
    "PAPER_ARCHITECTURES",
    "TRUST_HINT",
    "ArchitectureMismatchError",
    "CorruptCheckpointError",
    "CheckpointPool",
    "HFPool",
    "MissingConfigError",
    "MissingHeadError",
    "LoadedCheckpoint",
    "MissingTaskError",
    "PoolConfigError",
    "PoolSpec",
    "TaskSpec",
    "TruncatedCheckpointError",
    "UnknownCheckpointFormatError",
    "UnsafePickleError",
    "UnsupportedArchitectureError",
    "build_image_encoder",
    "canonicalize",
    "detect_architecture",
    "discover_pool",
    "expected_visual_shapes",
    "load_checkpoint",
    "load_head",
    "open_pool",
    "read_hf_folder",
    "read_pool_yaml",
    "read_safetensors",
    "sniff_format",
    "write_hf_folder",
]
