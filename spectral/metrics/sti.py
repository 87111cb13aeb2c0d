"""Singular Task Interference (STI), Gargiulo et al. 2025 (TSV), Eq. 6.

    STI({Δ_i}) = ‖(UᵀU − I) Σ (VᵀV − I)‖_1

with ``U = [U_1,k | … | U_T,k]`` (m × Tk) and ``V`` (n × Tk) the column-concatenated top-k singular vectors of
the T task matrices of one layer and ``Σ`` the block-diagonal matrix of their top-k singular values.
``‖·‖_1`` is the *entrywise* L1 norm (sum of absolute values), docs/contributing.md, "Math conventions". The score is not normalised (it
grows with T, k and the scale of the task matrices); the UI names this choice.

Rank convention. The public API gives ``sti(task_matrices, *, k=None)`` and the conventions say both "default k = int(r/T)" and
"k=None means full rank r". Resolved as: ``k=None`` → full rank ``r = min(m, n)`` (the literal Eq. 6 over whole
SVDs); TSV's operating point ``k = int(r/T)`` (at least 1) is :func:`default_sti_rank`, which callers such as the
UI pass explicitly: ``sti(Δ, k=default_sti_rank(r, T))``.

Numerics: the Gram matrices UᵀU, VᵀV and the product are formed in float64 (the concatenated singular vectors of
related tasks are nearly parallel, where float32 loses the small off-diagonal entries).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ShapeMismatchError

logger = logging.getLogger(__name__)

__all__ = ["StiBlocks", "default_sti_rank", "sti", "sti_blocks", "sti_from_factors"]

# Row blocks of the final (Tk × Tk) product are formed this many entries at a time, so that only UᵀU, VᵀV and
# one block are held at once.
_BLOCK_ELEMENTS = 1 << 24


def default_sti_rank(r: int, num_tasks: int) -> int:
    """TSV's per-task rank ``k = int(r / T)``, at least 1 (Gargiulo et al. 2025, §3.3 and Alg. 1).

    ``r = min(m, n)`` of the layer, ``num_tasks = T``. Pass the result as ``k`` to :func:`sti` or
    :func:`sti_from_factors`; their ``k=None`` means full rank r.
    """
    if r < 1 or num_tasks < 1:
        raise ValueError(f"default_sti_rank needs r ≥ 1 and T ≥ 1, got r={r}, T={num_tasks}")
    return max(1, r // num_tasks)


def _check_task_matrices(task_matrices: Tensor, what: str) -> None:
    if task_matrices.ndim != 3:
        raise ShapeMismatchError(
            f"{what}: task_matrices must be stacked as (T, m, n); got shape {tuple(task_matrices.shape)}"
        )
    if task_matrices.shape[0] == 0:
        raise ShapeMismatchError(f"{what}: task_matrices is empty (T = 0), shape {tuple(task_matrices.shape)}")


def _check_factors(U: Tensor, S: Tensor, V: Tensor, what: str) -> None:
    shapes = f"U {tuple(U.shape)}, S {tuple(S.shape)}, V {tuple(V.shape)}"
    if U.ndim != 3 or S.ndim != 2 or V.ndim != 3:
        raise ShapeMismatchError(f"{what}: expected batched factors U (T, m, r), S (T, r), V (T, n, r); got {shapes}")
    T, _, r_u = U.shape
    if T == 0:
        raise ShapeMismatchError(f"{what}: no tasks (T = 0); got {shapes}")
    if S.shape[0] != T or V.shape[0] != T or S.shape[1] != r_u or V.shape[2] != r_u:
        raise ShapeMismatchError(f"{what}: factors disagree on T or r; got {shapes}")


def _resolve_k(k: int | None, available: int, full_rank: int, what: str) -> int:
    if k is None:  # full rank; factors narrower than that (a LoRA layer's r triplets) hold every non-zero one
        k = min(full_rank, available)
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"{what}: k must be a whole number, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{what}: k must be at least 1, got {k}")
    if k > available:
        raise ShapeMismatchError(
            f"{what}: k = {k} exceeds the {available} singular triplets available per task (full rank {full_rank})"
        )
    return k


def _concatenate(X: Tensor, k: int) -> Tensor:
    """(T, d, r) batched singular vectors → (d, T·k) float64, task t in columns t·k … (t+1)·k − 1."""
    T, d, _ = X.shape
    return X[..., :k].to(torch.float64).permute(1, 0, 2).reshape(d, T * k)


def _grams(U: Tensor, V: Tensor, k: int) -> tuple[Tensor, Tensor]:
    Uc = _concatenate(U, k)
    Vc = _concatenate(V, k)
    return Uc.mT @ Uc, Vc.mT @ Vc


def sti_from_factors(U: Tensor, S: Tensor, V: Tensor, k: int | None = None) -> float:
    """STI (TSV Eq. 6) from precomputed per-task SVD factors of one layer.

    ``U (T, m, r)``, ``S (T, r)``, ``V (T, n, r)`` as :func:`spectral.linalg.thin_svd` returns them for a stack,
    or as ``LayerFactors.task_svd()`` hands them out (cached in the engine): ``sti_from_factors(*layer.task_svd(),
    k=k)``. Factors must be sorted by descending singular value; only the top ``k`` of each task are used
    (``k=None`` → all ``r = min(m, n)``; see :func:`default_sti_rank` for TSV's ``int(r/T)``).

    Returns the entrywise L1 norm ``Σ_ab |((UᵀU − I) Σ (VᵀV − I))_ab|`` as a Python float, computed in float64
    on the factors' device.
    """
    _check_factors(U, S, V, "sti")
    T, m, r_avail = U.shape
    n = V.shape[1]
    k = _resolve_k(k, r_avail, min(m, n), "sti")
    gram_u, gram_v = _grams(U, V, k)
    gram_u.diagonal().sub_(1.0)
    gram_v.diagonal().sub_(1.0)
    sigma = S[:, :k].to(torch.float64).reshape(T * k)
    left = gram_u * sigma.unsqueeze(0)  # (UᵀU − I) Σ
    size = T * k
    rows = max(1, _BLOCK_ELEMENTS // max(size, 1))
    total = torch.zeros((), dtype=torch.float64, device=U.device)
    for start in range(0, size, rows):
        total += (left[start:start + rows] @ gram_v).abs().sum()
    value = float(total)
    logger.debug("sti: T=%d, shape=(%d, %d), k=%d → %.6g", T, m, n, k, value)
    return value


def sti(task_matrices: Tensor, *, k: int | None = None) -> float:
    """Singular Task Interference of one layer (Gargiulo et al. 2025, TSV Eq. 6).

    ``task_matrices`` is the stacked ``(T, m, n)`` tensor of Δ_t. ``k`` is the number of top singular triplets
    kept per task; ``k=None`` means full rank ``r = min(m, n)``. TSV's operating point ``int(r/T)`` is
    :func:`default_sti_rank` (pass it explicitly). Un-normalised; 0 when the tasks' top-k left singular vectors
    are mutually orthogonal or their right singular vectors are (T = 1 always gives 0).
    """
    _check_task_matrices(task_matrices, "sti")
    x = task_matrices if task_matrices.dtype in (torch.float32, torch.float64) else task_matrices.float()
    U, S, V = linalg.thin_svd(x)
    return sti_from_factors(U, S, V, k)


@dataclass(frozen=True)
class StiBlocks:
    """The Gram matrices behind STI for a heatmap (TSV Fig. 3).

    ``uu = UᵀU`` and ``vv = VᵀV`` are ``(Tk × Tk)`` float64 (the identity is NOT subtracted: diagonal blocks are
    identity, off-diagonal blocks are the inter-task overlaps). Task t occupies rows/columns
    ``boundaries[t] … boundaries[t + 1] − 1``; ``boundaries`` has T + 1 entries, from 0 to T·k.
    """

    uu: Tensor
    vv: Tensor
    boundaries: tuple[int, ...]
    k: int

    @property
    def num_tasks(self) -> int:
        return len(self.boundaries) - 1


def sti_blocks(task_matrices_or_factors: Any, k: int | None = None) -> StiBlocks:
    """UᵀU and VᵀV of the concatenated top-k task singular vectors of one layer (TSV Eq. 6, Fig. 3).

    Accepts a stacked ``(T, m, n)`` tensor of task matrices, a ``(U, S, V)`` tuple of batched factors, or any
    object with a ``task_svd()`` method (``spectral.methods.base.LayerFactors``, cached in the engine).
    ``k=None`` → full rank ``min(m, n)``.
    """
    if isinstance(task_matrices_or_factors, Tensor):
        _check_task_matrices(task_matrices_or_factors, "sti_blocks")
        x = task_matrices_or_factors
        x = x if x.dtype in (torch.float32, torch.float64) else x.float()
        U, S, V = linalg.thin_svd(x)
    elif hasattr(task_matrices_or_factors, "task_svd"):
        U, S, V = task_matrices_or_factors.task_svd()
    elif isinstance(task_matrices_or_factors, (tuple, list)) and len(task_matrices_or_factors) == 3:
        U, S, V = task_matrices_or_factors
    else:
        raise TypeError(
            "sti_blocks expects a (T, m, n) tensor, a (U, S, V) tuple or a LayerFactors; "
            f"got {type(task_matrices_or_factors).__name__}"
        )
    _check_factors(U, S, V, "sti_blocks")
    T, m, r_avail = U.shape
    k = _resolve_k(k, r_avail, min(m, V.shape[1]), "sti_blocks")
    gram_u, gram_v = _grams(U, V, k)
    return StiBlocks(uu=gram_u, vv=gram_v, boundaries=tuple(t * k for t in range(T + 1)), k=k)
