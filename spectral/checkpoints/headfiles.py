"""Classification-head files → a (num_classes, embed_dim) tensor with L2-normalised rows.

Accepted: the papers' pickled ``ClassificationHead`` objects (``head_<Task>.pt``; their weight is the zero-shot
text embedding times CLIP's logit scale ≈ 100, so rows are re-normalised here and the evaluator applies the logit
scale), a state dict with a ``weight`` entry (``{"weight", "bias"}``), or a bare tensor (``torch.save`` or a
safetensors file with one tensor). A non-zero bias is not representable in :meth:`ModelPool.head` and is an error.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from spectral.checkpoints.errors import CheckpointError
from spectral.checkpoints.formats import read_object

__all__ = ["load_head", "normalise_rows"]


def normalise_rows(weight: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (float32)."""
    w = weight.detach().to(torch.float32)
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def load_head(path: str | os.PathLike[str], *, trust_pickle: bool = False, embed_dim: int | None = None) -> Tensor:
    """Read a head file; ``embed_dim`` (the image tower's output dimension) is checked when given."""
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"{file}: no such head file")
    obj = read_object(file, trust_pickle=trust_pickle)
    weight: Tensor | None = None
    bias: Tensor | None = None
    if isinstance(obj, nn.Module):
        state = obj.state_dict()
        weight, bias = state.get("weight"), state.get("bias")
        if weight is None:
            raise CheckpointError(f"{file}: the pickled {type(obj).__qualname__} has no 'weight'; not a head")
    elif isinstance(obj, Tensor):
        weight = obj
    elif isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        for key in ("weight", "classification_head.weight", "head.weight", "fc.weight"):
            if key in tensors:
                weight = tensors[key]
                bias = tensors.get(key[: -len("weight")] + "bias")
                break
        else:
            if len(tensors) == 1:
                weight = next(iter(tensors.values()))
        if weight is None:
            raise CheckpointError(f"{file}: no head weight found (keys: {sorted(tensors)[:6]})")
    else:
        raise CheckpointError(f"{file}: holds a {type(obj).__name__}, not a classification head")
    if weight.ndim != 2:
        raise CheckpointError(f"{file}: head weight has shape {tuple(weight.shape)}, expected (num_classes, embed_dim)")
    if bias is not None and bias.numel() and float(bias.detach().abs().max()) > 1e-6:
        raise CheckpointError(
            f"{file}: head has a non-zero bias (max |b| = {float(bias.abs().max()):.3g}); spectral's heads are "
            "cosine classifiers without bias"
        )
    if embed_dim is not None and weight.shape[1] != embed_dim:
        raise CheckpointError(
            f"{file}: head weight has shape {tuple(weight.shape)}, but the image tower outputs {embed_dim} features"
        )
    return normalise_rows(weight)
