"""Accuracy summaries of a merged model: normalised accuracy, NAI, and Pearson's r.

- Normalised accuracy (Ortiz-Jiménez et al. 2023; the "normalized accuracy" of TSV Tables 1-2 and Iso Table 1):
  ``acc(θ_M, t) / acc(θ_t, t)`` per task, averaged over tasks.
- Normalized Accuracy Improvement (Marczak et al. 2025, Iso Eq. 4):
  ``NAI(θ_M, θ_t; θ_0) = (Acc(θ_M) − Acc(θ_0)) / (Acc(θ_t) − Acc(θ_0))``, per task.
- Pearson's correlation coefficient, for NAI vs SAR_avg (Iso Fig. 3a, ρ = 0.88).

Accuracies are given as mappings task name → accuracy, on any one scale (fractions or percent; both ratios are
scale-free). Degenerate denominators (acc_ft = 0 for normalised accuracy, acc_ft = acc_zs for NAI) make that
task's value undefined: by default it is NaN, listed in ``undefined``, logged as a warning, and left out of the
mean (the mean is over the tasks where the value is defined; NaN if none). ``strict=True`` raises instead.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spectral.errors import MissingKeyError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "AccuracySummary",
    "nai",
    "nai_value",
    "normalised_accuracy",
    "normalised_accuracy_value",
    "pearson_r",
]


@dataclass(frozen=True)
class AccuracySummary:
    """Per-task values and their mean over the tasks where they are defined."""

    per_task: dict[str, float]
    mean: float
    undefined: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"per_task": dict(self.per_task), "mean": self.mean, "undefined": list(self.undefined)}


def normalised_accuracy_value(acc_merged: float, acc_finetuned: float) -> float:
    """``acc_merged / acc_finetuned`` for one task; NaN when acc_finetuned = 0."""
    acc_merged, acc_finetuned = float(acc_merged), float(acc_finetuned)
    if acc_finetuned == 0.0:
        return math.nan
    return acc_merged / acc_finetuned


def nai_value(acc_merged: float, acc_finetuned: float, acc_zeroshot: float) -> float:
    """NAI of one task (Iso Eq. 4): ``(acc_merged − acc_zs) / (acc_ft − acc_zs)``; NaN when acc_ft = acc_zs."""
    acc_merged, acc_finetuned, acc_zeroshot = float(acc_merged), float(acc_finetuned), float(acc_zeroshot)
    if acc_finetuned == acc_zeroshot:
        return math.nan
    return (acc_merged - acc_zeroshot) / (acc_finetuned - acc_zeroshot)


def _check_keys(merged: Mapping[str, float], **others: Mapping[str, float]) -> list[str]:
    tasks = list(merged)
    if not tasks:
        raise ParameterError("no task accuracies given (merged is empty)")
    for name, other in others.items():
        missing = [t for t in tasks if t not in other]
        if missing:
            raise MissingKeyError(
                f"task(s) {missing} have a merged accuracy but no {name} accuracy; {name} has {sorted(other)}"
            )
    return tasks


def _summarise(values: dict[str, float], why: str, strict: bool) -> AccuracySummary:
    undefined = tuple(t for t, v in values.items() if math.isnan(v))
    if undefined:
        if strict:
            raise ParameterError(f"{why} for task(s) {list(undefined)}")
        logger.warning("%s for task(s) %s: their values are NaN and left out of the mean", why, list(undefined))
    defined = [v for v in values.values() if not math.isnan(v)]
    mean = float(np.mean(defined)) if defined else math.nan
    return AccuracySummary(per_task=values, mean=mean, undefined=undefined)


def normalised_accuracy(
    merged: Mapping[str, float], finetuned: Mapping[str, float], *, strict: bool = False
) -> AccuracySummary:
    """Normalised accuracy (TSV Tab. 1-2, Iso Tab. 1): per task ``acc(θ_M, t) / acc(θ_t, t)`` and its mean.

    Tasks are the keys of ``merged``; each must be in ``finetuned``. acc_ft = 0 → NaN (``strict=True``: error).
    """
    tasks = _check_keys(merged, finetuned=finetuned)
    values = {t: normalised_accuracy_value(merged[t], finetuned[t]) for t in tasks}
    return _summarise(values, "normalised accuracy is undefined (fine-tuned accuracy is 0)", strict)


def nai(
    merged: Mapping[str, float],
    finetuned: Mapping[str, float],
    zeroshot: Mapping[str, float],
    *,
    strict: bool = False,
) -> AccuracySummary:
    """Normalized Accuracy Improvement (Marczak et al. 2025, Iso Eq. 4), per task and mean.

    ``(acc_merged − acc_zs) / (acc_ft − acc_zs)``; 1 = the merged model matches the fine-tuned one, 0 = no better
    than zero-shot, negative = worse. acc_ft = acc_zs → NaN (``strict=True``: error).
    """
    tasks = _check_keys(merged, finetuned=finetuned, zeroshot=zeroshot)
    values = {t: nai_value(merged[t], finetuned[t], zeroshot[t]) for t in tasks}
    return _summarise(values, "NAI is undefined (fine-tuned accuracy equals zero-shot accuracy)", strict)


def pearson_r(x: Sequence[float] | Mapping[str, float], y: Sequence[float] | Mapping[str, float]) -> float:
    """Pearson's correlation coefficient (Iso Fig. 3a: NAI vs SAR_avg, ρ = 0.88).

    Two equal-length sequences, or two mappings aligned on ``x``'s keys (each must be in ``y``). NaN pairs are
    dropped. Needs at least 2 pairs; NaN when either side is constant (correlation undefined).
    """
    if isinstance(x, Mapping) or isinstance(y, Mapping):
        if not (isinstance(x, Mapping) and isinstance(y, Mapping)):
            raise ParameterError("pearson_r: give two sequences or two mappings, not one of each")
        keys = _check_keys(x, y=y)
        xs = np.array([float(x[k]) for k in keys], dtype=np.float64)
        ys = np.array([float(y[k]) for k in keys], dtype=np.float64)
    else:
        xs = np.asarray(x, dtype=np.float64).reshape(-1)
        ys = np.asarray(y, dtype=np.float64).reshape(-1)
        if xs.shape != ys.shape:
            raise ParameterError(f"pearson_r: x has {xs.size} values, y has {ys.size}")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    if xs.size < 2:
        raise ParameterError(f"pearson_r needs at least 2 (x, y) pairs without NaN, got {xs.size}")
    dx, dy = xs - xs.mean(), ys - ys.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(dx @ dy) / denom))
