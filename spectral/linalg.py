"""Shared linear-algebra building blocks: thin SVD, truncation, polar factor, whitening, devices.

Conventions (shared/DESIGN.md §4): one layer's task matrix Δ has shape (m, n), r = min(m, n); a thin SVD is
returned as ``(U, S, V)`` with ``U: (..., m, r)``, ``S: (..., r)`` descending, ``V: (..., n, r)`` so that
``Δ = U diag(S) Vᵀ``. V (not Vᴴ) is returned because every method concatenates right singular vectors as columns.
"""
from __future__ import annotations

import torch
from torch import Tensor

from spectral.errors import ShapeMismatchError

SVD = tuple[Tensor, Tensor, Tensor]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def thin_svd(matrices: Tensor) -> SVD:
    """Thin SVD of one matrix or a batch ``(..., m, n)``, as ``(U, S, V)``.

    LAPACK is about twice as fast on the tall orientation on CPU (DESIGN.md §7: 16.5 s vs 35.7 s for a batch of
    768×3072), so a wide matrix is decomposed through its transpose and U, V are swapped.
    """
    if matrices.ndim < 2:
        raise ShapeMismatchError(f"thin_svd needs a matrix, got a tensor of shape {tuple(matrices.shape)}")
    m, n = matrices.shape[-2:]
    if m >= n:
        U, S, Vh = torch.linalg.svd(matrices, full_matrices=False)
        return U, S, Vh.mT
    U_t, S, Vh_t = torch.linalg.svd(matrices.mT, full_matrices=False)
    return Vh_t.mT, S, U_t


def truncate(U: Tensor, S: Tensor, V: Tensor, k: int) -> SVD:
    """Keep the top-k singular triplets (factors sorted descending, as thin_svd returns them)."""
    return U[..., :k], S[..., :k], V[..., :k]


def reconstruct(U: Tensor, S: Tensor, V: Tensor) -> Tensor:
    """``U diag(S) Vᵀ`` (batched)."""
    return (U * S.unsqueeze(-2)) @ V.mT


def rank_from_fraction(frac: float, r: int) -> int:
    """``k = int(frac · r)``, at least 1 and at most r (TSV's rule for k = r/T, Alg. 1)."""
    return max(1, min(r, int(frac * r)))


def numerical_rank(S: Tensor, shape: tuple[int, int]) -> int:
    """Number of singular values above ``σ_max · max(m, n) · eps`` (NumPy's matrix_rank tolerance).

    Singular vectors of the components below it are arbitrary (any orthonormal completion), so methods drop them
    before orthogonalising; for the full-rank task matrices of real checkpoints nothing is dropped.
    """
    if S.numel() == 0:
        return 0
    s_max = float(S.max())
    if s_max == 0.0:
        return 0
    tol = s_max * max(shape) * torch.finfo(S.dtype).eps
    return int((S > tol).sum())


def polar_factor(X: Tensor, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Orthogonal polar factor ``P Qᵀ`` of ``X = P D Qᵀ`` (Procrustes, TSV Eq. 8).

    The nearest matrix with orthonormal columns to X in Frobenius norm. Computed in ``dtype`` (float64 by default:
    the concatenated singular vectors of related tasks are nearly parallel, where float32 loses the small
    directions) and returned in X's dtype. When X has more columns than rows (Tk > r) the result is the polar
    factor of its rank-r part: P Qᵀ has orthonormal rows instead of columns.
    """
    P, _, Qh = torch.linalg.svd(X.to(dtype), full_matrices=False)
    return (P @ Qh).to(X.dtype)


def whiten(X: Tensor, *, eps: float = 1e-12, dtype: torch.dtype = torch.float64) -> Tensor:
    """Whitening ``X (XᵀX)^{-1/2}`` by eigendecomposition (TSV §4.2 and App. D.2.1).

    Mathematically equal to :func:`polar_factor` (TSV Prop. 4.1). Following App. D.2.1, Λ^{-1/2} is taken as
    ``1 / (sqrt(|λ|) + eps)`` so that round-off eigenvalues slightly below zero do not produce NaN.
    """
    Xd = X.to(dtype)
    gram = Xd.mT @ Xd
    eigvals, Q = torch.linalg.eigh(gram)
    inv_sqrt = 1.0 / (eigvals.abs().sqrt() + eps)
    return (Xd @ ((Q * inv_sqrt.unsqueeze(-2)) @ Q.mT)).to(X.dtype)


def orthogonalise(X: Tensor, how: str = "procrustes") -> Tensor:
    """Dispatch to :func:`polar_factor` (``"procrustes"``) or :func:`whiten` (``"whitening"``)."""
    if how == "procrustes":
        return polar_factor(X)
    if how == "whitening":
        return whiten(X)
    raise ValueError(f"unknown orthogonalisation {how!r}; expected 'procrustes' or 'whitening'")


def svd_of_factored(left: Tensor, right_orthonormal: Tensor) -> SVD:
    """Thin SVD of ``left @ right_orthonormalᵀ`` without forming it.

    ``left`` is (m, ρ) and ``right_orthonormal`` (n, ρ) has orthonormal columns. With ``left = P D Qᵀ`` the
    product is ``P D (right Q)ᵀ`` and ``right Q`` still has orthonormal columns, so only an m×ρ SVD is needed:
    a large saving when ρ is the (small) numerical rank of a cached factorisation.
    """
    P, D, Q = thin_svd(left)
    return P, D, right_orthonormal @ Q
