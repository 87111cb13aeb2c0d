"""Cosine similarity of flattened task vectors and per-layer task-vector norms.

The global similarity Ilharco et al. (2023) use and Iso (Marczak et al. 2025, Fig. 2a) and TSV (§1) contrast with
their spectral metrics: ``cos(τ_i, τ_j) = ⟨vec τ_i, vec τ_j⟩ / (‖τ_i‖ ‖τ_j‖)`` over all parameters. Dot products
and squared norms are sums over parameters, so they are accumulated layer by layer (:class:`CosineAccumulator`)
and a whole model never has to be flattened into memory. Accumulation is in float64.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Iterable

import torch
from torch import Tensor

from spectral.errors import ShapeMismatchError

logger = logging.getLogger(__name__)

__all__ = ["CosineAccumulator", "cosine_similarity_matrix", "layer_norms"]


class CosineAccumulator:
    """Streaming Gram matrix of T flattened task vectors (Iso Fig. 2a), one parameter at a time.

    ``update(stacked)`` takes one key's stacked ``(T, ...)`` task-vector entries; :meth:`similarity` returns the
    ``(T, T)`` cosine similarity of the concatenation of everything seen so far. The Gram lives on the device of the
    first update, in float64.
    """

    def __init__(self) -> None:
        self._gram: Tensor | None = None
        self.num_keys = 0
        self.num_parameters = 0

    @property
    def num_tasks(self) -> int | None:
        return None if self._gram is None else int(self._gram.shape[0])

    def update(self, stacked: Tensor, key: str = "") -> None:
        """Add one parameter's stacked task vectors ``(T, ...)`` (any shape after T)."""
        if stacked.ndim < 1 or stacked.shape[0] == 0:
            raise ShapeMismatchError(
                f"cosine similarity: {key or 'parameter'} must be stacked as (T, ...); got {tuple(stacked.shape)}"
            )
        T = int(stacked.shape[0])
        if self._gram is not None and T != self._gram.shape[0]:
            raise ShapeMismatchError(
                f"cosine similarity: {key or 'parameter'} has T = {T} tasks (shape {tuple(stacked.shape)}), "
                f"earlier parameters had T = {self._gram.shape[0]}"
            )
        flat = stacked.detach().reshape(T, -1).to(torch.float64)
        gram = flat @ flat.mT
        if self._gram is None:
            self._gram = gram
        else:
            self._gram += gram.to(self._gram.device)
        self.num_keys += 1
        self.num_parameters += int(flat.shape[1])

    @property
    def gram(self) -> Tensor:
        """``(T, T)`` float64 matrix of dot products ``⟨vec τ_i, vec τ_j⟩``."""
        if self._gram is None:
            raise ValueError("cosine similarity: no parameters were added")
        return self._gram

    def norms(self) -> Tensor:
        """``(T,)`` global L2 norms ``‖vec τ_t‖`` of the task vectors seen so far."""
        return self.gram.diagonal().clamp_min(0.0).sqrt()

    def similarity(self) -> Tensor:
        """``(T, T)`` cosine similarity, float64, symmetric, diagonal 1.

        A task vector that is exactly zero has an undefined cosine; its row and column are NaN.
        """
        norms = self.norms()
        outer = norms.unsqueeze(1) * norms.unsqueeze(0)
        cos = torch.where(outer > 0, self.gram / torch.where(outer > 0, outer, torch.ones_like(outer)),
                          torch.full_like(outer, float("nan")))
        cos = cos.clamp(-1.0, 1.0)
        cos = 0.5 * (cos + cos.mT)
        idx = torch.arange(cos.shape[0], device=cos.device)
        cos[idx, idx] = torch.where(norms > 0, torch.ones_like(norms), torch.full_like(norms, float("nan")))
        return cos


Layers = Mapping[str, Tensor] | Iterable[Tensor] | Iterable[tuple[str, Tensor]]


def _items(layers: Layers) -> Iterable[tuple[str, Tensor]]:
    if isinstance(layers, Mapping):
        yield from layers.items()
        return
    for i, item in enumerate(layers):
        if isinstance(item, Tensor):
            yield str(i), item
        else:
            key, tensor = item
            yield str(key), tensor


def cosine_similarity_matrix(
    layers: Mapping[str, Tensor] | Iterable[Tensor] | Iterable[tuple[str, Tensor]],
) -> Tensor:
    """``(T, T)`` cosine similarity of flattened task vectors (Iso Fig. 2a), streamed over parameters.

    ``layers``: a mapping key → stacked ``(T, ...)`` tensor, or an iterable (a generator is fine) of stacked
    tensors or ``(key, stacked)`` pairs. Equal to the cosine of the fully flattened task vectors.
    """
    acc = CosineAccumulator()
    for key, stacked in _items(layers):
        acc.update(stacked, key)
    return acc.similarity()


def layer_norms(
    layers: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]],
) -> dict[str, Tensor]:
    """Frobenius norm of each task's Δ per parameter: ``{key: (T,) float64}``, keys in input order.

    ``layers`` maps (or yields ``(key, stacked)`` pairs of) key → stacked ``(T, ...)`` task vectors.
    """
    out: dict[str, Tensor] = {}
    for key, stacked in _items(layers):
        if stacked.ndim < 1 or stacked.shape[0] == 0:
            raise ShapeMismatchError(f"layer_norms: {key} must be stacked as (T, ...); got {tuple(stacked.shape)}")
        flat = stacked.detach().reshape(stacked.shape[0], -1).to(torch.float64)
        out[key] = torch.linalg.vector_norm(flat, dim=1)
    return out
