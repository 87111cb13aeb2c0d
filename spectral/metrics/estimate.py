"""Accuracy estimates from a subsample: Wilson score intervals and a fixed, seeded, class-stratified subsample.

- Wilson (1927) score interval for a binomial proportion, 95 % by default: with p̂ = k/n and z = 1.959964,
  centre = (p̂ + z²/2n) / (1 + z²/n), half-width = z·sqrt(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n). Unlike the normal
  (Wald) interval it stays inside [0, 1] and is not degenerate at 0 or n correct answers.
- :func:`stratified_subsample`: each class keeps its share of the split (largest-remainder rounding, at least one
  image per class while the size allows), images drawn by a seeded permutation within the class, so the same
  split, size and seed always give the same images.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from spectral.errors import ParameterError

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal

__all__ = ["Z95", "mean_interval_halfwidth", "stratified_subsample", "wilson_interval"]


def wilson_interval(successes: int | float, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval of ``successes`` out of ``n`` (fractions; (nan, nan) if n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    if successes < 0 or successes > n:
        raise ParameterError(f"successes must lie in [0, n={n}], got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval_halfwidth(accuracies: Sequence[float], counts: Sequence[int], z: float = Z95) -> float:
    """Half-width of a normal-approximation interval of the mean over tasks of independent accuracy estimates
    (fractions): z · sqrt(Σ_t p_t(1−p_t)/n_t) / T; 0 where every number rests on its full split is the caller's
    business (a full split has no sampling error)."""
    terms = [p * (1 - p) / n for p, n in zip(accuracies, counts) if n > 0]
    if not terms:
        return math.nan
    return z * math.sqrt(sum(terms)) / len(terms)


def stratified_subsample(labels: Tensor | Sequence[int], size: int, seed: int = 0) -> Tensor:
    """Sorted indices of a class-stratified subsample of ``size`` items (all items when ``size`` ≥ their number)."""
    y = torch.as_tensor(labels, dtype=torch.long).flatten()
    n = int(y.numel())
    if size <= 0:
        raise ParameterError(f"subsample size must be positive, got {size}")
    if size >= n:
        return torch.arange(n)
    classes, counts = torch.unique(y, return_counts=True)
    quota = counts.double() * size / n
    take = quota.floor().long()
    if size >= len(classes):  # every class present at least once
        take = torch.maximum(take, torch.ones_like(take))
    rest = size - int(take.sum())
    if rest > 0:  # largest remainders first, ties by class order
        order = torch.argsort(-(quota - quota.floor()), stable=True)
        for c in order.tolist():
            if rest == 0:
                break
            if take[c] < counts[c]:
                take[c] += 1
                rest -= 1
    while int(take.sum()) > size:  # the at-least-one rule overshot: trim the largest classes
        take[int(torch.argmax(take))] -= 1
    g = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(y == c).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:k]])
    return torch.sort(torch.cat(chosen)).values
