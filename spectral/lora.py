"""Low-rank task matrices (LoRA adapters): ΔW = s·B·A and its exact thin SVD from the factors.

A LoRA update of a layer (Hu et al. 2022, Eq. 3) is ΔW = s·B·A with B (m × r), A (r × n) and s = lora_alpha / r
(rsLoRA, Kalajdzievski 2023: s = lora_alpha / √r). Its rank is at most r, so its thin SVD costs O((m + n)·r²):

    B = Q_B R_B,  Aᵀ = Q_A R_A  (thin QR),   s·R_B R_Aᵀ = U_c Σ V_cᵀ  (an r × r SVD),
    ΔW = (Q_B U_c) Σ (Q_A V_c)ᵀ,

and no m × n matrix is ever formed. The QR and the core SVD run in float64 (they are tiny), so the factors equal a
float64 SVD of the dense ΔW to float32 precision.

**Rank-deficient factors.** :func:`factor_svd` always returns exactly q = min(r, m, n) triplets. Where B·A has
rank below q, the trailing singular values are zero (to round-off) and their singular vectors are still orthonormal
columns (Q_B U_c has orthonormal columns whatever the rank) — the same contract as a dense thin SVD of a
rank-deficient matrix, whose trailing vectors are an arbitrary completion. Methods that care drop them with their
``rank_cut="numerical"`` parameter (TSV-M's default).

**One layer, several ranks.** Tasks of one pool may have different ranks (or no adapter on a layer: ΔW = 0, rank 0).
:func:`stack_factors` stacks per-task factors of different widths to the widest one, padding with σ = 0 and zero
singular vectors: a padded triplet adds nothing to any reconstruction, and numerical rank cuts drop it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spectral.errors import ShapeMismatchError

SVD = tuple[Tensor, Tensor, Tensor]


def lora_scale(lora_alpha: float, r: int, *, use_rslora: bool = False) -> float:
    """PEFT's scaling of B·A: ``lora_alpha / r``, or ``lora_alpha / √r`` with rsLoRA."""
    if r <= 0:
        raise ValueError(f"LoRA rank must be positive, got {r}")
    return float(lora_alpha) / (math.sqrt(r) if use_rslora else r)


@dataclass(frozen=True)
class LowRankDelta:
    """ΔW = scale · B · A of one (m × n) parameter, in the canonical orientation (out × in)."""

    B: Tensor  # (m, r)
    A: Tensor  # (r, n)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.B.ndim != 2 or self.A.ndim != 2 or self.B.shape[1] != self.A.shape[0]:
            raise ShapeMismatchError(
                f"low-rank factors must be B (m × r) and A (r × n); got B {tuple(self.B.shape)}, A {tuple(self.A.shape)}"
            )

    @classmethod
    def zero(cls, shape: tuple[int, int], dtype: torch.dtype = torch.float32) -> "LowRankDelta":
        """ΔW = 0 of ``shape`` (a module the task does not adapt): rank 0."""
        m, n = shape
        return cls(torch.zeros(m, 0, dtype=dtype), torch.zeros(0, n, dtype=dtype), 0.0)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.B.shape[0]), int(self.A.shape[1])

    @property
    def rank(self) -> int:
        """r, the factors' inner dimension (an upper bound of the rank of ΔW)."""
        return int(self.B.shape[1])

    def dense(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """The m × n matrix ΔW (for the methods that need it, one layer at a time)."""
        B = self.B.to(device=device, dtype=dtype)
        A = self.A.to(device=device, dtype=dtype)
        if self.rank == 0:
            return torch.zeros(self.shape, dtype=dtype, device=B.device)
        return (B * self.scale) @ A

    def svd(self, device: torch.device | str | None = None) -> SVD:
        """:func:`factor_svd` of this update."""
        return factor_svd(self.B, self.A, self.scale, device=device)


def factor_svd(B: Tensor, A: Tensor, scale: float = 1.0, *, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> SVD:
    """Thin SVD of ``scale · B @ A`` from the factors: U (m, q), S (q,), V (n, q), q = min(r, m, n), S descending.

    QR of B and of Aᵀ, then the SVD of the small core s·R_B R_Aᵀ (module docstring), all in float64; the m × n
    product is never formed. Rank-deficient factors give zero trailing singular values with orthonormal vectors.
    """
    if B.ndim != 2 or A.ndim != 2 or B.shape[1] != A.shape[0]:
        raise ShapeMismatchError(f"factor_svd needs B (m × r) and A (r × n); got B {tuple(B.shape)}, A {tuple(A.shape)}")
    m, r = B.shape
    n = A.shape[1]
    target = torch.device(device) if device is not None else B.device
    if r == 0 or m == 0 or n == 0 or scale == 0.0:
        q = 0 if scale == 0.0 else min(r, m, n)
        return (torch.zeros(m, q, dtype=dtype, device=target), torch.zeros(q, dtype=dtype, device=target),
                torch.zeros(n, q, dtype=dtype, device=target))
    Bd = B.to(device=target, dtype=torch.float64)
    Ad = A.to(device=target, dtype=torch.float64)
    Q_B, R_B = torch.linalg.qr(Bd)  # (m, p), (p, r), p = min(m, r)
    Q_A, R_A = torch.linalg.qr(Ad.mT)  # (n, p'), (p', r)
    core = (R_B * float(scale)) @ R_A.mT  # (p, p')
    U_c, S, Vh_c = torch.linalg.svd(core, full_matrices=False)
    if scale < 0:  # keep σ ≥ 0 (never happens with PEFT's scales, kept for completeness)
        U_c = -U_c
    U = Q_B @ U_c
    V = Q_A @ Vh_c.mT
    return U.to(dtype), S.abs().to(dtype), V.to(dtype)


def stack_factors(parts: list[SVD], *, min_width: int = 1) -> SVD:
    """Stack per-task factors (U_t (m, q_t), S_t (q_t,), V_t (n, q_t)) of one layer as (T, m, Q), (T, Q), (T, n, Q),
    Q = max(max_t q_t, ``min_width``): narrower tasks are padded with σ = 0 and zero singular vectors (module
    docstring). Factors of equal width are stacked as they are."""
    widths = [int(p[1].shape[-1]) for p in parts]
    width = max(max(widths), min_width)
    if all(w == width for w in widths):
        return tuple(torch.stack([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]
    U0, S0, V0 = parts[0]
    T, m, n = len(parts), U0.shape[0], V0.shape[0]
    U = torch.zeros(T, m, width, dtype=U0.dtype, device=U0.device)
    S = torch.zeros(T, width, dtype=S0.dtype, device=S0.device)
    V = torch.zeros(T, n, width, dtype=V0.dtype, device=V0.device)
    for t, (Ut, St, Vt) in enumerate(parts):
        q = widths[t]
        U[t, :, :q] = Ut
        S[t, :q] = St
        V[t, :, :q] = Vt
    return U, S, V
