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

from spectral.methods.base import ALPHA, Method, Param, as_float

Progress = Callable[[int, int, str], None]


def ties_thresholds(task_vectors: Mapping[str, Tensor], density: float) -> Tensor:
    """Per-task magnitude threshold keeping the top ``density`` fraction of the whole flattened task vector.

    With d entries, exactly int(density · d) entries (ties aside) have |Δ| ≥ the threshold. (The reference
    ``topk_values_mask`` thresholds at the (d − int(density · d))-th smallest value and so keeps one entry more;
    at model scale the two agree to one part in 10⁷.)
    """
    keys = list(task_vectors)
    first = task_vectors[keys[0]]
    T = first.shape[0]
    thresholds = torch.empty(T, dtype=torch.float64)
    for t in range(T):
        flat = torch.cat([as_float(task_vectors[key][t]).reshape(-1).abs() for key in keys])
        d = flat.numel()
        keep = int(d * density)
        thresholds[t] = float("inf") if keep == 0 else float(flat.kthvalue(d - keep + 1).values)
        del flat
    return thresholds


def _trimmed(stacked: Tensor, thresholds: Tensor) -> Tensor:
    x = as_float(stacked)
    thr = thresholds.to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x * (x.abs() >= thr)


def ties(
    task_vectors: Mapping[str, Tensor], *, alpha: float = 1.0, density: float = 0.2, progress: Progress | None = None
) -> dict[str, Tensor]:
    """TIES-Merging (Yadav et al. 2023): trim to the top-``density`` entries of each task vector by magnitude,
    elect each entry's sign by the sign of the summed trimmed mass (zeros take the majority sign of the whole
    model), and average only the entries that agree with it (disjoint mean). Returns alpha · τ_TIES per key.
    """
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
    majority = 1 if sign_total >= 0 else -1
    merged: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        trimmed = _trimmed(task_vectors[key], thresholds)
        sign = elected.pop(key).to(trimmed.dtype)
        sign[sign == 0] = majority
        agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
        selected = trimmed * agree
        count = (selected != 0).sum(0).clamp(min=1)
        merged[key] = alpha * selected.sum(0) / count
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
