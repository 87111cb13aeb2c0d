"""KnOTS (Stoica et al., ICLR 2025, "Model merging with SVD to tie the KnOTS", §3 and Fig. 2).

KnOTS aligns the task updates of one layer in a shared basis before merging them:

1. Concatenate the T task updates and take one thin SVD (§3, "Aligning task updates"):
   ``[Δ_1 | … | Δ_T] = U S [V_1ᵀ | … | V_Tᵀ]``. U (m × r') is the basis every task shares; task t is represented by
   its block ``S V_tᵀ`` (r' × n). The official code (``task_merger.SVDMerger.apply_svd``) concatenates the PyTorch
   (out × in) weights along their input axis (``concat_across_output=True``: U is out × T·in), keeps the directions
   with s > 1e-5, and multiplies S into each V_t before merging (``V = diag(s) @ V``), so the merge sees ``S V_tᵀ``.
2. Merge the T representations entry by entry with an existing merge (§3, "Merging"): TIES (trim to the top
   ``density`` magnitudes of each task, elect each entry's sign by the sign of the summed trimmed values, zero sums
   taking the majority sign, and take the disjoint mean of the entries that agree: ``masking_ops.ties_masking`` +
   ``masked_merge(merging_type="mean")``), DARE then TIES (``dare: True`` in the KnOTS-DARE-TIES configs: each
   entry dropped with probability p and the rest scaled by 1/(1 − p), then the TIES mask and disjoint mean), or
   Task Arithmetic (a sum).
3. Rebuild ``α · U · merge_t(S V_tᵀ)`` (``reconstruct_merged_sd``: ``U @ merged_sV``).

Since ``S V_tᵀ = Uᵀ Δ_t`` (U spans every Δ_t's column space), task t's representation is its update in the shared
basis. Here U and S come from the cached per-task SVDs Δ_t = A_t Σ_t B_tᵀ: ``[Δ_1 | … | Δ_T] = [A_1Σ_1 | … | A_TΣ_T]
· blockdiag(B_tᵀ)`` and the block-diagonal factor has orthonormal rows, so the concatenation's U and S are those of
the m × T·r matrix ``[A_1Σ_1 | … | A_TΣ_T]`` (decomposed in float64, as the official code does), and
``Uᵀ Δ_t = (Uᵀ A_t Σ_t) B_tᵀ``. No m × T·n matrix is formed, and a low-rank (LoRA) task costs its rank.

Differences from the official code, all named by parameters:

- the TIES trim ranks the entries of one layer (the engine merges layer by layer); the official code ranks the
  flattened representations of every layer of the model together. The trim rule is the TIES authors' (keep
  |x| ≥ the (d − ⌊density·d⌋)-th smallest |x|; density 1 keeps all), and zero-sum signs take the sign of the layer's
  summed elected signs (the official code: the model's);
- ``concat="columns"`` is the official orientation for weights stored out × in (nn.Linear, CLIP); GPT-2's Conv1D
  stores in × out, for which ``concat="rows"`` (a shared right basis: ``[Δ_1; … ; Δ_T] = [U_1; … ; U_T] S Vᵀ``) is
  the official orientation;
- directions dropped by ``rank_cut="numerical"`` are those below σ₁·max(m, T·n)·eps(float32) (the official code
  drops s ≤ 1e-5, an absolute threshold); ``"all"`` keeps every direction;
- DARE draws its masks from a generator seeded per (seed, parameter name), not from the global torch seed.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ParameterError
from spectral.methods.base import (
    ALPHA,
    LayerFactors,
    Method,
    Param,
    ParamValue,
    kept_rank,
    rank_cut_param,
)
from spectral.methods.dare import drop_and_rescale, key_generator
from spectral.methods.elementwise import ties_thresholds

MERGE_CHOICES = ("ties", "dare", "task_arithmetic")
CONCAT_CHOICES = ("columns", "rows")


def shared_basis(layer: LayerFactors, concat: str = "columns", rank_cut: str = "numerical") -> tuple[Tensor, Tensor]:
    """The shared basis U (m × r') of the concatenated task updates and every task's representation ``S V_tᵀ =
    Uᵀ Δ_t`` stacked as (T, r', n) (KnOTS §3; official ``apply_svd``). With ``concat="rows"`` the roles of rows and
    columns swap: U is n × r' and the representations are ``Uᵀ Δ_tᵀ`` (T, r', m).

    Computed from the layer's per-task SVDs (see the module docstring), the concatenation's SVD in float64.
    """
    if concat not in CONCAT_CHOICES:
        raise ParameterError(f"knots: concat must be one of {list(CONCAT_CHOICES)}, got {concat!r}")
    A, sigma, B = layer.task_svd()  # (T, m, r), (T, r), (T, n, r)
    if concat == "rows":
        A, B = B, A
    T, m, r = A.shape
    n = B.shape[1]
    dtype = A.dtype
    scaled = (A.double() * sigma.double().unsqueeze(1))  # A_t Σ_t, (T, m, r)
    K = scaled.permute(1, 0, 2).reshape(m, T * r)  # [A_1Σ_1 | … | A_TΣ_T]
    U, S, _ = linalg.thin_svd(K)
    keep = kept_rank(S, (m, T * n), rank_cut)
    U = U[:, :keep]
    # Uᵀ Δ_t = (Uᵀ A_t Σ_t) B_tᵀ: (T, r', r) @ (T, r, n)
    reps = torch.matmul(torch.matmul(U.mT.unsqueeze(0), scaled), B.double().mT)
    return U.to(dtype), reps.to(dtype)


def ties_merge(reps: Tensor, density: float) -> Tensor:
    """TIES on stacked (T, ...) representations as the KnOTS code applies it (``ties_masking`` then the disjoint
    mean ``masked_merge(merging_type="mean")``): trim each task to its top magnitudes (TIES authors' rule, see
    :func:`spectral.methods.elementwise.ties_thresholds`), sign = sign of Σ_t trimmed with zeros set to the sign of
    the summed signs, keep the trimmed entries of that sign, average them over the tasks that kept them."""
    thresholds = ties_thresholds({"layer": reps}, density).to(reps.dtype)
    trimmed = reps * (reps.abs() >= thresholds.reshape(-1, *([1] * (reps.ndim - 1))))
    sign = torch.sign(trimmed.sum(0))
    sign[sign == 0] = torch.sign(sign.sum())
    agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
    selected = trimmed * agree
    count = (selected != 0).sum(0).clamp(min=1)
    return selected.sum(0) / count


def trim_sum(reps: Tensor, density: float) -> Tensor:
    """Task Arithmetic on the representations (``merging_type="sum"``), after the same per-task magnitude trim
    (``tv_masking``; density 1 keeps everything)."""
    thresholds = ties_thresholds({"layer": reps}, density).to(reps.dtype)
    return (reps * (reps.abs() >= thresholds.reshape(-1, *([1] * (reps.ndim - 1))))).sum(0)


def knots(
    layer: LayerFactors, *, alpha: float = 1.0, merge: str = "ties", density: float = 0.2, p: float = 0.1,
    seed: int = 0, concat: str = "columns", rank_cut: str = "numerical",
) -> Tensor:
    """KnOTS merge of one layer (Stoica et al. 2025, §3): α · U · merge_t(S V_tᵀ)."""
    if merge not in MERGE_CHOICES:
        raise ParameterError(f"knots: merge must be one of {list(MERGE_CHOICES)}, got {merge!r}")
    U, reps = layer.derived(f"knots:{concat}:{rank_cut}", lambda: shared_basis(layer, concat, rank_cut))
    m, n = layer.shape
    if U.shape[1] == 0:
        return torch.zeros((m, n), dtype=U.dtype, device=U.device)
    if merge == "task_arithmetic":
        merged = trim_sum(reps, density)
    else:
        if merge == "dare":
            generator = key_generator(seed, str(getattr(layer, "_key", "")))
            reps = drop_and_rescale(reps.cpu(), p=p, generator=generator).to(reps.device)
        merged = ties_merge(reps, density)
    out = alpha * (U @ merged)
    return out.mT.contiguous() if concat == "rows" else out


class KnotsMethod(Method):
    """KnOTS: the non-matrix parameters follow the chosen merge (Task Arithmetic α·Σ, TIES/DARE α·mean)."""

    def non_matrix_rule(self, params: Mapping[str, Any]) -> str:
        return "sum" if params.get("merge") == "task_arithmetic" else "alpha_mean"

    def resolve_params(self, params: Mapping[str, Any], num_tasks: int | None = None) -> dict[str, ParamValue]:
        resolved = super().resolve_params(params, num_tasks)
        if resolved["merge"] == "dare" and float(resolved["p"]) >= 1.0:
            raise ParameterError("knots: DARE drop rate p must be below 1")
        return resolved


KNOTS = KnotsMethod(
    name="knots",
    display_name="KnOTS",
    paper="Stoica et al. 2025, Model merging with SVD to tie the KnOTS, ICLR (§3)",
    params=(
        # the official configs: KnOTS-TIES α = 0.6 (top-20%), KnOTS-DARE-TIES α = 0.7 (p = 0.1, no trim)
        Param(**{**ALPHA.__dict__, "default": 0.6}),
        Param("merge", "ties", "choice", choices=MERGE_CHOICES, label="merge the aligned tasks with",
              help="TIES (trim, elect sign, disjoint mean), DARE (random drop with rescale, then TIES) or Task "
                   "Arithmetic (sum), applied to every task's S·V_tᵀ in the shared basis U."),
        Param("density", 0.2, "float", 0.0, 1.0, 0.01, label="density (top-k %)",
              help="Fraction of each task's representation entries kept by magnitude, per layer (official "
                   "KnOTS-TIES: 20%; KnOTS-DARE-TIES: 100%). 1 keeps everything."),
        Param("p", 0.1, "float", 0.0, 0.99, 0.01, label="DARE drop rate p",
              help="Only with merge = dare: probability of dropping each entry (official: 0.1)."),
        Param("seed", 0, "int", 0, 2**31 - 1, 1, label="DARE seed", help="Only with merge = dare."),
        Param("concat", "columns", "choice", choices=CONCAT_CHOICES, label="concatenate along",
              help="'columns': [Δ_1 | … | Δ_T], a shared left basis (the official orientation for out × in "
                   "weights: CLIP, nn.Linear). 'rows': a shared right basis (the official orientation for GPT-2's "
                   "in × out Conv1D)."),
        rank_cut_param("numerical"),
    ),
    layer_fn=knots,
    non_matrix="alpha_mean",  # resolved per run from ``merge``: see non_matrix_rule
    description="One SVD of the concatenated task updates aligns them in a shared basis; merge the aligned "
                "S·V_t with TIES/DARE/TA and rebuild with U.",
)
