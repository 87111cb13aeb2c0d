"""Whole-model, element-wise methods: TIES-Merging and Consensus (TALL masks).

They decide per parameter *entry* using statistics of the whole flattened task vector (TIES' top-20% magnitude
threshold, the majority sign), so they take every key at once. Inputs are a mapping key → stacked (T, ...) task
vectors that may load lazily; every pass goes key by key so only one key's tensors are in memory at a time,
except for the one per-task magnitude threshold of TIES.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import Tensor

from spectral.errors import ParameterError
from spectral.methods.base import ALPHA, Method, Param, as_float

Progress = Callable[[int, int, str], None]


TRIM_CHOICES = ("global", "per_tensor")


def ties_thresholds(task_vectors: Mapping[str, Tensor], density: float) -> Tensor:
    """Per-task magnitude threshold of the TIES authors' ``topk_values_mask`` over the whole flattened task vector.

    With d entries and k = int(density · d), the threshold is the (d − k)-th smallest |Δ| and every entry with
    |Δ| ≥ it is kept: k + 1 entries (ties aside), as in the authors' code and FusionBench. density = 1 keeps
    every entry (the authors' code fails there: the 0-th smallest value does not exist).
    """
    keys = list(task_vectors)
    first = task_vectors[keys[0]]
    T = first.shape[0]
    thresholds = torch.empty(T, dtype=torch.float64)
    for t in range(T):
        flat = torch.cat([as_float(task_vectors[key][t]).reshape(-1).abs() for key in keys])
        d = flat.numel()
        rank = d - int(d * density)
        thresholds[t] = 0.0 if rank <= 0 else float(flat.kthvalue(rank).values)
        del flat
    return thresholds


def _trimmed(stacked: Tensor, thresholds: Tensor) -> Tensor:
    x = as_float(stacked)
    thr = thresholds.to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x * (x.abs() >= thr)


def trim_per_tensor(stacked: Tensor, density: float) -> Tensor:
    """mergekit's ``sparsify`` magnitude trim of one key's stacked (T, ...) task vectors: per task, the
    ``max(1, int(density · numel))`` largest magnitudes of this tensor alone (mergekit 0.1.5 keeps at least one
    entry of a tensor when density > 0), the rest set to zero. density ≥ 1 keeps the tensor, density ≤ 0 zeros it."""
    x = as_float(stacked)
    if density >= 1.0:
        return x
    flat = x.reshape(x.shape[0], -1)
    keep = max(1, int(density * flat.shape[1])) if density > 0 else 0
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask.scatter_(1, flat.abs().topk(keep, dim=1).indices, True)
    return (flat * mask).reshape(x.shape)


def _ties_per_tensor(task_vectors: Mapping[str, Tensor], alpha: float, density: float,
                     progress: Progress | None, normalize: bool = True) -> dict[str, Tensor]:
    # mergekit's TIES (generalized task arithmetic, consensus "sum", normalize): per tensor, sign = +1 where
    # Σ_t trimmed ≥ 0 else −1; the mean over the non-zero trimmed entries of that sign
    keys = list(task_vectors)
    merged: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        trimmed = trim_per_tensor(task_vectors[key], density)
        sign = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).to(trimmed.dtype)
        agree = torch.sign(trimmed) == sign
        total = (trimmed * agree).sum(0)
        merged[key] = alpha * (total / agree.sum(0).clamp(min=1) if normalize else total)
        if progress:
            progress(i + 1, len(keys), f"TIES (per tensor): {key}")
    return merged


def ties(
    task_vectors: Mapping[str, Tensor], *, alpha: float = 1.0, density: float = 0.2, trim: str = "global",
    normalize: bool = True, progress: Progress | None = None,
) -> dict[str, Tensor]:
    """TIES-Merging (Yadav et al. 2023): trim to the top-``density`` entries of each task vector by magnitude,
    elect each entry's sign by the sign of the summed trimmed mass, and average only the entries that agree with
    it (disjoint mean). Returns alpha · τ_TIES per key.

    ``trim="global"`` is the TIES authors' code (and FusionBench): the trim ranks the whole flattened task vector
    (int(d·density) + 1 entries kept, :func:`ties_thresholds`), entries whose elected sign is 0 take the sign of
    the sum of all elected signs (itself 0 when they balance, which then selects negative entries, as there).
    ``trim="per_tensor"`` is mergekit's: per tensor and per task, int(density·numel) entries, zero sums elect +.
    ``normalize=False`` sums the entries that agree instead of averaging them (mergekit's ``normalize: false``,
    the default of its ``dare_ties``).
    """
    if trim == "per_tensor":
        return _ties_per_tensor(task_vectors, alpha, density, progress, normalize)
    if trim != "global":
        raise ParameterError(f"ties: trim must be one of {list(TRIM_CHOICES)}, got {trim!r}")
    keys = list(task_vectors)
    thresholds = ties_thresholds(task_vectors, density)
    elected: dict[str, Tensor] = {}
    sign_total = 0.0
    for i, key in enumerate(keys):
        sign = torch.sign(_trimmed(task_vectors[key], thresholds).sum(0))
        sign_total += float(sign.sum())
        elected[key] = sign.to(torch.int8)
        if progress:
            progress(i + 1, 2 * len(keys), f"TIES signs: {key}")
    majority = 1.0 if sign_total > 0 else (-1.0 if sign_total < 0 else 0.0)
    merged: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        trimmed = _trimmed(task_vectors[key], thresholds)
        sign = elected.pop(key).to(trimmed.dtype)
        sign[sign == 0] = majority
        agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
        selected = trimmed * agree
        total = selected.sum(0)
        merged[key] = alpha * (total / (selected != 0).sum(0).clamp(min=1) if normalize else total)
        if progress:
            progress(len(keys) + i + 1, 2 * len(keys), f"TIES merge: {key}")
    return merged


def tall_masks(stacked: Tensor, tall_lambda: float) -> Tensor:
    """TALL masks of one key (Wang et al. 2024, Eq. 3): m_t = |Δ_t| > λ · |Σ_s Δ_s − Δ_t| (boolean, (T, ...))."""
    x = as_float(stacked)
    multi = x.sum(0, keepdim=True)
    return x.abs() > tall_lambda * (multi - x).abs()


def consensus(
    task_vectors: Mapping[str, Tensor],
    *,
    alpha: float = 0.4,
    tall_lambda: float = 0.4,
    min_tasks: int = 2,
    progress: Progress | None = None,
) -> dict[str, Tensor]:
    """Consensus Task Arithmetic (Wang et al. 2024, Eq. 4): keep the entries that at least ``min_tasks`` TALL
    masks select (the ≥ 2-tasks rule removes 'selfish' and 'catastrophic' weights), then alpha · Σ_t Δ_t there."""
    merged: dict[str, Tensor] = {}
    keys = list(task_vectors)
    for i, key in enumerate(keys):
        x = as_float(task_vectors[key])
        keep = tall_masks(x, tall_lambda).sum(0) >= min_tasks
        merged[key] = alpha * x.sum(0) * keep
        if progress:
            progress(i + 1, len(keys), f"Consensus: {key}")
    return merged


def mask_density(masks: Mapping[str, Tensor]) -> float:
    """Fraction of True entries over all masks (for reporting how much Consensus keeps)."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / total if total else math.nan


TIES = Method(
    name="ties",
    display_name="TIES",
    paper="Yadav et al. 2023, TIES-Merging",
    params=(
        ALPHA,
        Param("density", 0.2, "float", 0.0, 1.0, 0.01, label="density (top-k %)",
              help="Fraction of each task vector's entries kept by magnitude (paper default 20%)."),
        Param("trim", "global", "choice", choices=TRIM_CHOICES, label="trim over",
              help="'global': the TIES authors' code and FusionBench (top entries of the whole flattened task "
                   "vector, int(d·density)+1 kept). 'per_tensor': mergekit (each tensor of each task alone, "
                   "int(density·numel) kept; zero sign sums elect +)."),
        Param("normalize", True, "bool", label="disjoint mean",
              help="On: average the entries that agree with the elected sign (TIES). Off: sum them (mergekit's "
                   "normalize: false)."),
    ),
    model_fn=ties,
    description="Trim, elect sign, disjoint mean over the whole flattened task vectors.",
)

CONSENSUS = Method(
    name="consensus",
    display_name="Consensus TA",
    paper="Wang et al. 2024, Localizing Task Information (TALL masks, Consensus Merging)",
    params=(
        Param(**{**ALPHA.__dict__, "default": 0.4}),
        Param("tall_lambda", 0.4, "float", 0.0, 2.0, 0.05, label="TALL λ",
              help="Mask threshold: keep entries where |Δ_t| > λ|Σ_s Δ_s − Δ_t|."),
        Param("min_tasks", 2, "int", 0, 20, 1, label="min tasks",
              help="Keep entries selected by at least this many TALL masks (paper: 2)."),
    ),
    model_fn=consensus,
    description="Task Arithmetic restricted to the entries at least two tasks' TALL masks agree on.",
)
