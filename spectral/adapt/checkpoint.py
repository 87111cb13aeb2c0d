"""Checkpoints of a test-time adaptation run: one safetensors file, written atomically (temp file + os.replace).

The file holds every tensor needed to continue bit for bit — λ, mask logits, Adam's moments and step counts, the
lowest-entropy snapshot — and, in its string metadata, a JSON document with the configuration, the step reached and
the traces. Being a single file, a reader sees either the previous checkpoint or the new one, never a mixture.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import Tensor

from spectral.io import atomic_save_tensors
from spectral.adapt.errors import AdaptError

log = logging.getLogger(__name__)

FORMAT = "spectral-adapt-1"


def save_checkpoint(path: Path, tensors: dict[str, Tensor], document: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON ``document`` to ``path`` atomically."""
    payload = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_save_tensors(Path(path), payload, {"format": FORMAT, "document": json.dumps(document)})


def read_document(path: Path) -> dict[str, Any]:
    """Only the JSON document of a checkpoint (cheap: no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise AdaptError(f"adaptation checkpoint {path} is unreadable: {err}") from err
    if meta.get("format") != FORMAT:
        raise AdaptError(f"{path} is not an adaptation checkpoint (format {meta.get('format')!r})")
    return json.loads(meta["document"])


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, document) of a checkpoint written by :func:`save_checkpoint`."""
    document = read_document(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise AdaptError(f"adaptation checkpoint {path} is unreadable: {err}") from err
    return tensors, document


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """Adam's per-parameter state as flat named tensors ``opt.<index>.<name>``."""
    out: dict[str, Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if isinstance(value, Tensor) else torch.tensor(value)
            out[f"opt.{index}.{name}"] = tensor.detach().cpu().clone()
    return out


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> None:
    """Load state saved by :func:`optimizer_tensors` into a freshly built optimiser of the same parameters
    (its own param_groups, i.e. the configured lr and betas, are kept)."""
    fresh = optimizer.state_dict()
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if not name.startswith("opt."):
            continue
        _, index, field = name.split(".", 2)
        state.setdefault(int(index), {})[field] = value
    fresh["state"] = state
    optimizer.load_state_dict(fresh)
