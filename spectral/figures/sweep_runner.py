"""Sweeps behind the Sweeps page: merge (or compress) at each parameter value and evaluate on every task.

Every point goes through :meth:`spectral.figures.source.FigureSource.accuracies` (the app's ``Workspace``) (or ``compressed_accuracy``), i.e. the
evaluation package's :class:`~spectral.eval.evaluate.Evaluator` and its SQLite results store: a point is never
evaluated twice, across sessions, restarts and the CLI sweeps of :mod:`spectral.eval.sweeps` (same keys). Points
are evaluated one at a time, so a running sweep never blocks the merge lab for longer than one evaluation.

Tables are long: model, value (the swept parameter), task, accuracy (%). References are mean accuracies (%)
drawn as horizontal lines.
"""
from __future__ import annotations

from statistics import fmean
from typing import Any, Mapping, Sequence

import pandas as pd

from spectral.figures.source import FigureSource, Progress
from spectral.errors import ParameterError
from spectral.methods import get_method

COLUMNS = ["model", "value", "task", "accuracy"]
#: the papers' validation grid for α (0.1 … 2.0), as :data:`spectral.eval.sweeps.ALPHAS`
ALPHA_GRID: tuple[float, ...] = tuple(round(0.1 * i, 2) for i in range(1, 21))


def _check_range(values: Sequence[float], low: float, high: float, what: str) -> None:
    if not values:
        raise ParameterError(f"{what}: give at least one value")
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise ParameterError(f"{what}: values {bad} outside [{low}, {high}]")


def references(ws: FigureSource, *labels: str) -> dict[str, float]:
    out = {}
    if "Fine-tuned" in labels:
        out["Fine-tuned"] = fmean(ws.accuracies("finetuned").values())
    if "Zero-shot" in labels:
        out["Zero-shot"] = fmean(ws.accuracies("zeroshot").values())
    return out


def rank_sweep(ws: FigureSource, fractions: Sequence[float], progress: Progress) -> tuple[pd.DataFrame, dict[str, float]]:
    """TSV-C of every task at each rank fraction, evaluated on its own task (TSV Fig. 2; the task is known)."""
    _check_range(fractions, 1e-6, 1.0, "rank fractions")
    tasks = ws.task_names
    rows, n, i = [], len(tasks) * len(fractions), 0
    for frac in fractions:
        for task in tasks:
            progress(i, n, f"TSV-C {task}, k fraction {frac:g}")
            rows.append({"model": "TSV-C", "value": frac, "task": task,
                         "accuracy": ws.compressed_accuracy(task, frac)})
            i += 1
    progress(n, n, "rank sweep: done")
    return pd.DataFrame(rows, columns=COLUMNS), references(ws, "Fine-tuned", "Zero-shot")


def alpha_sweep(ws: FigureSource, methods: Sequence[str], alphas: Sequence[float],
                params: Mapping[str, Mapping[str, Any]], progress: Progress) -> tuple[pd.DataFrame, dict[str, float]]:
    """Mean accuracy of each method at each α (Iso Fig. 8); other parameters from ``params`` or defaults."""
    _check_range(alphas, 0.0, 3.0, "α values")
    rows, n, i = [], len(methods) * len(alphas), 0
    for m in methods:
        method = get_method(m)
        if "alpha" not in method.param_names:
            raise ParameterError(f"{method.display_name} has no α to sweep")
        for alpha in alphas:
            progress(i, n, f"{method.display_name}, α = {alpha:g}")
            acc = ws.accuracies(m, {**dict(params.get(m) or {}), "alpha": alpha})
            rows += [{"model": method.display_name, "value": alpha, "task": t, "accuracy": a} for t, a in acc.items()]
            i += 1
    progress(n, n, "α sweep: done")
    return pd.DataFrame(rows, columns=COLUMNS), references(ws, "Fine-tuned", "Zero-shot")


def common_frac_sweep(ws: FigureSource, fractions: Sequence[float], alpha: float,
                      progress: Progress) -> tuple[pd.DataFrame, dict[str, float]]:
    """Iso-CTS at each common-subspace fraction k/r (Iso Fig. 6); Iso-C at the same α as reference."""
    _check_range(fractions, 0.0, 1.0, "common fractions")
    rows = []
    for i, frac in enumerate(fractions):
        progress(i, len(fractions) + 1, f"Iso-CTS, common fraction {frac:g}")
        acc = ws.accuracies("iso_cts", {"alpha": alpha, "common_frac": frac})
        rows += [{"model": "Iso-CTS", "value": frac, "task": t, "accuracy": a} for t, a in acc.items()]
    progress(len(fractions), len(fractions) + 1, "Iso-C reference")
    refs = references(ws, "Fine-tuned")
    refs["Iso-C"] = fmean(ws.accuracies("iso_c", {"alpha": alpha}).values())
    progress(len(fractions) + 1, len(fractions) + 1, "common-fraction sweep: done")
    return pd.DataFrame(rows, columns=COLUMNS), refs


def ablation_variants(num_tasks: int) -> list[dict[str, Any]]:
    """The four rows of TSV Table 4 as engine calls (as :data:`spectral.eval.sweeps.ABLATION_VARIANTS`): k = r/T
    wherever the rank is truncated; "interference reduction only" orthogonalises the full-rank factors."""
    k = 1.0 / num_tasks
    return [
        {"variant": "Task Arithmetic", "low_rank": False, "interference_reduction": False,
         "method": "task_arithmetic", "params": {}},
        {"variant": "Low-rank only", "low_rank": True, "interference_reduction": False,
         "method": "tsv_low_rank", "params": {"k_frac": k}},
        {"variant": "Interference reduction only", "low_rank": False, "interference_reduction": True,
         "method": "tsv_m", "params": {"k_frac": 1.0}},
        {"variant": "TSV-M", "low_rank": True, "interference_reduction": True,
         "method": "tsv_m", "params": {"k_frac": k}},
    ]


def ablation(ws: FigureSource, alpha_grid: Sequence[float] | None, progress: Progress) -> pd.DataFrame:
    """TSV Table 4 on this pool: each variant with α chosen on the validation split from ``alpha_grid`` (as the
    paper; None: each method's default α), evaluated on the test split; change against Task Arithmetic."""
    variants = ablation_variants(len(ws.task_names))
    grid = list(alpha_grid or [])
    if grid:
        _check_range(grid, 0.0, 3.0, "α grid")
    steps = len(variants) * (len(grid) + 1)
    rows, step = [], 0
    for v in variants:
        alpha = None
        if grid:
            best = -1.0
            for a in grid:
                progress(step, steps, f"ablation: {v['variant']}, α = {a:g} on validation")
                mean = fmean(ws.accuracies(v["method"], {**v["params"], "alpha": a}, split="val").values())
                if mean > best + 1e-12:
                    best, alpha = mean, a
                step += 1
        progress(step, steps, f"ablation: {v['variant']} on test")
        params = {**v["params"], **({"alpha": alpha} if alpha is not None else {})}
        acc = ws.accuracies(v["method"], params)
        step += 1
        resolved = get_method(v["method"]).resolve_params(params, len(ws.task_names))
        rows.append({**{k: v[k] for k in ("variant", "low_rank", "interference_reduction", "method")},
                     "alpha": float(resolved.get("alpha", float("nan"))),
                     "params": ", ".join(f"{k}={val:g}" for k, val in resolved.items() if isinstance(val, float)),
                     "accuracy": fmean(acc.values())})
    progress(steps, steps, "ablation: done")
    table = pd.DataFrame(rows)
    table["delta"] = table.accuracy - table.accuracy.iloc[0]
    return table
