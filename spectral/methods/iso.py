"""Isotropic merging: Iso-C and Iso-CTS (Marczak et al., ICML 2025)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spectral import linalg
from spectral.methods.base import ALPHA, LayerFactors, Method, Param, kept_rank, rank_cut_param, rank_tolerance


def iso_c(layer: LayerFactors, *, alpha: float = 1.3, rank_cut: str = "all") -> Tensor:
    """Iso-C (Iso Alg. 1, Eq. 7-9): alpha · σ̄ U Vᵀ with Δ_TA = Σ_t Δ_t = U Σ Vᵀ and σ̄ the mean of its r values.

    ``rank_cut="all"`` (the official Iso code and FusionBench) keeps all r directions, so where Δ_TA is
    numerically rank deficient its round-off directions are scaled up to σ̄ like every other (their vectors are
    an arbitrary completion of the basis). ``"numerical"`` leaves out the directions below
    σ₁·max(m, n)·eps(float32) (:func:`spectral.methods.base.kept_rank`). σ̄ stays the mean over all r (Eq. 7).
    """
    U, S, V = layer.sum_svd()
    sigma_bar = S.mean()
    keep = kept_rank(S, layer.shape, rank_cut)
    return alpha * sigma_bar * (U[:, :keep] @ V[:, :keep].mT)


def iso_cts_sizes(r: int, num_tasks: int, common_frac: float) -> tuple[int, int]:
    """(k, s): common-subspace size and per-task size, rounded as the official Iso-CTS code does.

    k = int(r · common_frac); s_total = round((r − k) / T) · T with Python's round (half to even);
    k = r − s_total; s = s_total / T (docs/contributing.md, "Math conventions").
    """
    k = int(r * common_frac)
    s_total = round((r - k) / num_tasks) * num_tasks
    k = r - s_total
    if k < 0:  # T > r − k rounding up can overshoot r; keep every direction task-specific
        s_total, k = (r // num_tasks) * num_tasks, r - (r // num_tasks) * num_tasks
    return k, s_total // num_tasks


@dataclass(frozen=True)
class ResidualGrams:
    """The parts of Iso-CTS's residual Grams of a tall layer (m > n) that do not depend on the common size k.

    With the sum's left vectors orthonormalised in float64, Û = U R⁻¹ (R from the Cholesky factorisation of
    UᵀU: the float32 U is orthonormal only to ~1e-6, which the Gram would square into a leak of the common
    directions), and per task ``Y_t = Ûᵀ A_t S_t`` (r×ρ_t) and ``E_t = (A_t S_t)ᵀ (I − ÛÛᵀ) A_t S_t`` (ρ_t×ρ_t,
    the part of Δ_t outside the sum's column space), the Gram of Δ̄_t = (I − Û_k Û_kᵀ) Δ_t in Δ_t's right basis is

        Δ̄_tᵀ Δ̄_t ≅ E_t + Y_t[k:]ᵀ Y_t[k:]     (a sum of two positive semi-definite parts: no cancellation)

    so a new common_frac costs one (r−k)×ρ×ρ product per task instead of the m×ρ×ρ one of forming Δ̄_t. Y_t is
    kept in float32 (its rounding is a backward error of float32 size on Δ̄_t), E_t in float64.
    """

    R: Tensor  # (r, r) float64, upper triangular: U = Û R
    Y: list[Tensor]  # per task (r, ρ_t) float32
    E: list[Tensor]  # per task (ρ_t, ρ_t) float64
    rho: list[int]


def residual_grams(layer: LayerFactors) -> ResidualGrams:
    """Compute :class:`ResidualGrams` from the layer's cached factors (once per layer: the engine keeps it)."""
    A, S, B = layer.task_svd()
    U = layer.sum_svd()[0].to(torch.float64)
    m, n = layer.shape
    R = torch.linalg.cholesky(U.mT @ U, upper=True)
    Ys, Es, rhos = [], [], []
    for t in range(layer.num_tasks):
        rho = kept_rank(S[t], (m, n), "numerical")
        left = (A[t, :, :rho] * S[t, :rho]).to(torch.float64)
        Y = torch.linalg.solve_triangular(R.mT, U.mT @ left, upper=False)
        E = left.mT @ left - Y.mT @ Y
        Ys.append(Y.to(A.dtype))
        Es.append((E + E.mT) / 2)
        rhos.append(rho)
    return ResidualGrams(R, Ys, Es, rhos)


def task_specific_directions(
    layer: LayerFactors, U_common: Tensor, s: int, U_rest: Tensor | None = None, rank_cut: str = "numerical"
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-s SVD of each Δ̄_t = Δ_t − U_k U_kᵀ Δ_t (Iso Eq. 10, Alg. 2 l. 6-8), concatenated across tasks.

    Computed from the per-task factors Δ_t = A_t S_t B_tᵀ (cached by the engine): Δ̄_t = C_t B_tᵀ with
    C_t = (I − U_k U_kᵀ) A_t S_t (m×ρ_t, ρ_t the numerical rank of Δ_t), and B_t has orthonormal columns, so the
    triplets of Δ̄_t are those of C_t with right vectors mapped by B_t.

    - When the sum's U is square (m ≤ n), ``U_rest`` = its columns after k spans the complement,
      I − U_k U_kᵀ = U_rest U_restᵀ, and C_t is replaced by the smaller (r−k)×ρ_t matrix U_restᵀ A_t S_t.
    - When it is not (m > n), the Gram of C_t comes from the k-independent :class:`ResidualGrams` (kept by the
      engine across slider moves) instead of from C_t itself.

    Either way the top-s triplets come from the eigenpairs of a float64 Gram (block Krylov when s is small,
    else ``eigh``) that pass a residual test (:func:`spectral.linalg.top_gram_eigenpairs`); where they do not, the
    full SVD of C_t decides. Exact to float32 precision. The tasks are independent: on the CPU they run side by
    side on single-threaded workers (:func:`spectral.linalg.map_tasks`).

    ``rank_cut="numerical"`` leaves out residual directions whose σ is below σ₁(Δ_t)·max(m, n)·eps(float32) (the
    round-off of Δ_t itself), so a task may contribute fewer than s. ``"all"`` (the official code) always takes s per task: where Δ̄_t has fewer
    than s numerically non-zero directions, the rest come from the full SVD of C_t over every column of A_t S_t
    (an arbitrary completion, as in the official code).
    """
    A, S, B = layer.task_svd()
    m, n = layer.shape
    keep_all = rank_cut == "all"
    rank_rtol = rank_tolerance((m, n))  # the numerical cut, relative to σ_1
    triplet_rtol = -1.0 if keep_all else rank_rtol  # below zero: keep s whatever their size
    grams = None
    if U_rest is None and linalg.USE_GRAM:
        grams = layer.derived("iso_cts_residual_grams", lambda: residual_grams(layer))
    k = U_common.shape[1]

    def one_task(t: int) -> tuple[Tensor, Tensor, Tensor]:
        P, D, Q = residual_triplets(t)
        if not keep_all and D.numel():
            # round-off of Δ_t is relative to Δ_t's own scale, not the residual's: a residual that is all
            # round-off (a task inside the common subspace) must not pass its own relative test
            kept = int((D > rank_rtol * float(S[t].max())).sum())
            P, D, Q = P[:, :kept], D[:kept], Q[:, :kept]
        return P, D, Q

    def residual_triplets(t: int) -> tuple[Tensor, Tensor, Tensor]:
        rho = kept_rank(S[t], (m, n), "numerical")
        left = A[t, :, :rho] * S[t, :rho]
        found = None
        if grams is not None:
            tail = grams.Y[t][k:].to(torch.float64)
            gram = grams.E[t] + tail.mT @ tail
            found = linalg.top_gram_eigenpairs(gram, s, rank_rtol=rank_rtol, rtol=linalg.default_rtol(rho, S.dtype),
                                               what=f"residual of task {t} ({m}×{n})")
            if found is not None and keep_all and found[0].numel() < s:
                found = None  # fewer than s above the cut: the dense route below completes them
        if found is not None:
            lam, Q = found
            D = lam.sqrt().to(S.dtype)
            Q = Q.to(S.dtype)
            # C_t Q = A_t S_t Q − Û_k (Y_t[:k] Q), with Û_k = U_k R_kk⁻¹
            coef = torch.linalg.solve_triangular(grams.R[:k, :k], grams.Y[t][:k].to(torch.float64) @ Q.double(),
                                                 upper=True)
            P = (left @ Q - U_common @ coef.to(S.dtype)) / D
            return P, D, B[t, :, :rho] @ Q
        if keep_all and rho < s:
            rho = S.shape[-1]
            left = A[t] * S[t]
        if U_rest is not None:
            (P, D, Q), _ = linalg.top_singular_triplets(U_rest.mT @ left, s, rank_rtol=triplet_rtol)
            P = U_rest @ P
        else:
            left = left - U_common @ (U_common.mT @ left)
            (P, D, Q), _ = linalg.top_singular_triplets(left, s, rank_rtol=triplet_rtol)
        return P, D, B[t, :, :rho] @ Q

    U_parts, S_parts, V_parts = zip(*linalg.map_tasks(one_task, range(layer.num_tasks), device=A.device))
    return torch.cat(U_parts, 1), torch.cat(S_parts), torch.cat(V_parts, 1)


def iso_cts(layer: LayerFactors, *, alpha: float = 1.5, common_frac: float = 0.8, rank_cut: str = "all") -> Tensor:
    """Iso-CTS (Iso Alg. 2, Eq. 10-14): alpha · σ̄ U* V*ᵀ over common and task-specific directions.

    U* = [U_k | Ū_1,s | … | Ū_T,s] and V* likewise, orthogonalised by their polar factors (Eq. 11);
    σ̄ = (1/r)(Σ_{i≤k} σ_i^cm + Σ_t Σ_{i≤s} σ_{t,i}^ts) (Eq. 13). Because every task-specific left vector is
    orthogonal to U_k (Eq. 10), the polar factor of U* is [U_k | polar(Ū)], which needs only the m×Ts part.
    With common_frac = 1 this is exactly Iso-C.

    ``rank_cut="all"`` (the official code) keeps all k common directions and s directions per task, including
    those whose singular value is numerically zero; where such arbitrary task directions are present, U* is the
    polar factor of the whole concatenation, as in the official code (they need not be orthogonal to U_k).
    ``"numerical"`` drops common and task directions below σ₁·max(m, n)·eps(float32).
    """
    r = layer.rank
    k, s = iso_cts_sizes(r, layer.num_tasks, common_frac)
    U, S, V = layer.sum_svd()
    k_eff = min(k, kept_rank(S, layer.shape, rank_cut))
    U_k, S_k, V_k = U[:, :k_eff], S[:k_eff], V[:, :k_eff]
    if s > 0:
        U_rest = U[:, k_eff:] if U.shape[0] == U.shape[1] else None  # square U: its tail spans the complement
        U_ts, S_ts, V_ts = task_specific_directions(layer, U_k, s, U_rest, rank_cut)
    else:
        U_ts, S_ts, V_ts = U[:, :0], S[:0], V[:, :0]
    sigma_bar = (S[:k].sum() + S_ts.sum()) / r
    arbitrary = (rank_cut == "all" and U_rest is None and S_ts.numel() > 0
                 and bool((S_ts <= rank_tolerance(layer.shape) * float(S.max())).any())) if s > 0 else False
    if arbitrary:  # completion vectors may lean on U_k: the polar factor of the whole U*
        U_star = linalg.polar_factor(torch.cat([U_k, U_ts], 1))
    else:
        U_star = torch.cat([U_k, linalg.polar_factor(U_ts)], 1) if U_ts.shape[1] else U_k
    V_star = linalg.polar_factor(torch.cat([V_k, V_ts], 1)) if V_ts.shape[1] else V_k
    return alpha * sigma_bar * (U_star @ V_star.mT)


ISO_C = Method(
    name="iso_c",
    display_name="Iso-C",
    paper="Marczak et al. 2025, No Task Left Behind (Alg. 1)",
    # α is chosen on validation in the paper; 1.3 is typical of its ViT-B/32 8-task runs.
    params=(Param(**{**ALPHA.__dict__, "default": 1.3}), rank_cut_param("all")),
    layer_fn=iso_c,
    non_matrix="alpha_mean",
    description="Flatten the spectrum of Σ_t Δ_t to its mean singular value.",
)

ISO_CTS = Method(
    name="iso_cts",
    display_name="Iso-CTS",
    paper="Marczak et al. 2025, No Task Left Behind (Alg. 2)",
    params=(
        Param(**{**ALPHA.__dict__, "default": 1.5}),
        Param(
            "common_frac", 0.8, "float", 0.0, 1.0, 0.01, label="common fraction",
            help="Fraction of the r directions taken from the common subspace of Σ_t Δ_t (paper default 0.8).",
            effective=lambda v, r, T: dict(zip(("k", "s"), iso_cts_sizes(r, T, v))),
        ),
        rank_cut_param("all"),
    ),
    layer_fn=iso_cts,
    non_matrix="alpha_mean",
    description="Isotropic merge over the common subspace plus task-specific directions orthogonal to it.",
)
