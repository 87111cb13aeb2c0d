"""Which values of a rank parameter change a merge, for the matrix shapes of a pool.

A slider over ``k_frac`` (TSV-M, CART, TSV-C) or ``common_frac`` (Iso-CTS) moves in steps of 0.005 or 0.01, but the
merge only sees integer sizes: k = int(k_frac · r) (TSV Alg. 1), or Iso-CTS's (k, s) rounded as the official code
(:func:`spectral.methods.iso.iso_cts_sizes`). Many steps change nothing (issue 29: ``iso_cts_sizes(128, 8, cf)``
stays (64, 8) from 0.49 to 0.52). A parameter declares its sizes through ``Param.effective``; this module turns that
into the distinct values of a slider grid for a pool's ranks, and into the sizes shown beside the slider.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping, Sequence

from spectral.errors import ParameterError
from spectral.methods.base import Param

Sizes = dict[str, int]


def grid(param: Param) -> list[float]:
    """The slider's values: low, low + step, …, high (rounded to the step's decimals, so no 0.30000000000000004)."""
    if param.low is None or param.high is None or not param.step:
        raise ParameterError(f"parameter {param.name!r} has no finite range and step (low={param.low}, "
                             f"high={param.high}, step={param.step})")
    decimals = step_decimals(float(param.step))
    count = int(round((float(param.high) - float(param.low)) / float(param.step)))
    return [round(float(param.low) + i * float(param.step), decimals) for i in range(count + 1)]


def step_decimals(step: float) -> int:
    """Decimals needed to write multiples of ``step`` (0.005 → 3, 0.01 → 2, 1 → 0)."""
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 3


def effective_sizes(param: Param, value: float, ranks: Iterable[int], num_tasks: int) -> dict[int, Sizes]:
    """``{r: sizes}`` the merge uses at ``value`` for each distinct rank r (``{"k": 8}``, ``{"k": 104, "s": 3}``)."""
    if param.effective is None:
        raise ParameterError(f"parameter {param.name!r} declares no effective sizes")
    return {r: dict(param.effective(float(value), int(r), int(num_tasks))) for r in sorted(set(ranks))}


def distinct_values(param: Param, ranks: Iterable[int], num_tasks: int, *,
                    keep: Sequence[float | None] = ()) -> list[float]:
    """The values of the parameter's slider grid that change the merge on a pool with these ranks.

    Consecutive grid values with the same sizes for every rank form one class; each class is represented by one
    value: a value of ``keep`` that falls in it (the default, the value in the URL; the first such), else the
    class's smallest grid value. ``keep`` values off the grid (1/3) are placed among the grid values. The result
    is sorted; moving between two neighbours always changes k (or s) of at least one rank.
    """
    ranks = sorted({int(r) for r in ranks})
    if not ranks:
        raise ParameterError(f"parameter {param.name!r}: no matrix ranks given (a pool without matrix layers?)")
    wanted = [float(v) for v in keep if v is not None and _in_range(param, float(v))]
    values = sorted(set(grid(param)) | set(wanted))

    def signature(v: float) -> tuple[tuple[tuple[str, int], ...], ...]:
        return tuple(tuple(sorted(param.effective(v, r, num_tasks).items())) for r in ranks)  # type: ignore[misc]

    classes: list[list[float]] = []
    last: object = None
    for v in values:
        sig = signature(v)
        if sig != last:
            classes.append([])
            last = sig
        classes[-1].append(v)
    out = []
    for members in classes:
        chosen = next((w for w in wanted if w in members), members[0])
        out.append(chosen)
    return out


def _in_range(param: Param, value: float) -> bool:
    if math.isnan(value):
        return False
    return (param.low is None or value >= param.low) and (param.high is None or value <= param.high)


def describe_sizes(sizes: Mapping[int, Sizes], layers_per_rank: Mapping[int, int] | None = None, *,
                   limit: int = 3) -> str:
    """``k = 8 (r = 64, 40 layers) · k = 6 (r = 50, 1 layer)``: the most common ranks first, at most ``limit``."""
    counts = Counter(layers_per_rank or {r: 1 for r in sizes})
    order = sorted(sizes, key=lambda r: (-counts.get(r, 0), -r))
    parts = []
    for r in order[:limit]:
        what = ", ".join(f"{name} = {value}" for name, value in sizes[r].items())
        n = counts.get(r, 0)
        where = f"r = {r}" + (f", {n} layer{'s' if n != 1 else ''}" if layers_per_rank else "")
        parts.append(f"{what} ({where})")
    if len(order) > limit:
        parts.append(f"{len(order) - limit} more rank{'s' if len(order) - limit != 1 else ''}")
    return " · ".join(parts)


__all__ = ["describe_sizes", "distinct_values", "effective_sizes", "grid", "step_decimals"]
