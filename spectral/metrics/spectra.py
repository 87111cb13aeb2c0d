"""Spectra of task matrices: singular values, cumulative energy and effective rank.

Effective rank follows AdaRank (Lee et al. 2025, §3, Fig. 3): the number of singular components that hold a given
fraction (95%) of the total energy Σ_i σ_i². (AdaRank cites Roy & Vetterli's entropy-based effective rank but uses
this energy definition; so do we.) Energy sums are taken in float64.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor

from spectral.errors import ShapeMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "effective_rank",
    "effective_rank_from_singular_values",
    "effective_ranks",
    "energy_curve",
    "normalised_spectrum",
    "singular_values",
]


def _check_energy(energy: float) -> None:
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")


def singular_values(matrix: Tensor) -> Tensor:
    """Singular values of a matrix or a batch ``(..., m, n)``, descending, ``(..., min(m, n))``.

    Half-precision inputs are upcast to float32; computed on the input's device (TSV Fig. 2 / Iso Fig. 1 spectra).
    """
    if matrix.ndim < 2:
        raise ShapeMismatchError(f"singular_values needs a matrix, got a tensor of shape {tuple(matrix.shape)}")
    x = matrix if matrix.dtype in (torch.float32, torch.float64) else matrix.float()
    return torch.linalg.svdvals(x)


def energy_curve(S: Tensor) -> Tensor:
    """Cumulative energy fraction ``c_k = Σ_{i≤k} σ_i² / Σ_i σ_i²`` for k = 1 … r (AdaRank Fig. 3), float64.

    ``S`` is ``(..., r)``, sorted descending (as SVD returns it). ``c_r = 1``. A zero spectrum gives zeros.
    """
    if S.ndim < 1:
        raise ShapeMismatchError(f"energy_curve needs singular values (..., r), got shape {tuple(S.shape)}")
    sq = S.detach().to(torch.float64).square()
    cum = torch.cumsum(sq, dim=-1)
    if S.shape[-1] == 0:
        return cum
    total = cum[..., -1:]
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, cum / safe, torch.zeros_like(cum))


def effective_ranks(S: Tensor, energy: float = 0.95) -> Tensor:
    """Batched effective rank (AdaRank Fig. 3): for ``S (..., r)`` a long tensor ``(...)``.

    Smallest k with ``Σ_{i≤k} σ_i² ≥ energy · Σ_i σ_i²``; 0 for a zero spectrum. ``S`` sorted descending.
    """
    _check_energy(energy)
    curve = energy_curve(S)
    if S.shape[-1] == 0:
        return torch.zeros(S.shape[:-1], dtype=torch.long, device=S.device)
    # Round-off guard: the last entry is exactly 1 by construction, so energy = 1 always resolves.
    reached = curve >= energy
    nonzero = curve[..., -1] > 0
    k = torch.argmax(reached.to(torch.int8), dim=-1) + 1  # first True
    return torch.where(nonzero, k, torch.zeros_like(k))


def effective_rank_from_singular_values(S: Tensor, energy: float = 0.95) -> int:
    """Effective rank of one spectrum ``S (r,)`` (AdaRank Fig. 3): smallest k holding ≥ ``energy`` of Σσ²."""
    if S.ndim != 1:
        raise ShapeMismatchError(
            f"effective_rank_from_singular_values needs a 1-D spectrum, got shape {tuple(S.shape)}; "
            "use effective_ranks for batches"
        )
    return int(effective_ranks(S, energy))


def effective_rank(matrix: Tensor, *, energy: float = 0.95) -> int:
    """Effective rank of a matrix ``(m, n)`` (AdaRank, Lee et al. 2025, Fig. 3).

    Smallest k such that the top-k squared singular values hold at least ``energy`` of ``Σ_i σ_i²``; 0 for a zero
    matrix. ``effective_rank(diag(3, 2, 1), energy=0.9) == 2`` (13/14 ≈ 0.93 ≥ 0.9 > 9/14).
    """
    if matrix.ndim != 2:
        raise ShapeMismatchError(f"effective_rank needs a matrix (m, n), got shape {tuple(matrix.shape)}")
    return effective_rank_from_singular_values(singular_values(matrix), energy)


def normalised_spectrum(S: Tensor, *, floor: float | None = None) -> Tensor:
    """``σ_i / σ_1`` (``S (..., r)`` sorted descending), for comparing spectra of different scale (Iso Fig. 1).

    A zero spectrum stays zero. ``floor`` (e.g. 1e-12) clamps from below so that a log axis has no −inf.
    """
    if S.ndim < 1:
        raise ShapeMismatchError(f"normalised_spectrum needs singular values (..., r), got shape {tuple(S.shape)}")
    if S.shape[-1] == 0:
        return S.clone()
    top = S[..., :1]
    safe = torch.where(top > 0, top, torch.ones_like(top))
    out = torch.where(top > 0, S / safe, torch.zeros_like(S))
    if floor is not None:
        out = out.clamp_min(floor)
    return out
