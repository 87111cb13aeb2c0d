"""Parameter sweeps over a pool, as long pandas tables (one row per setting × task), all through the results store.

- :func:`rank_sweep` — TSV-C rank fraction vs accuracy per task (TSV Fig. 2: fractions 0.01 … 0.5 and full rank).
- :func:`alpha_sweep` — accuracy vs the scaling coefficient of one method (Iso Fig. 8, TSV Fig. 7).
- :func:`common_frac_sweep` — Iso-CTS accuracy vs the size of the common subspace (Iso Fig. 6).
- :func:`tsv_ablation` — TSV Table 4: Task Arithmetic, low-rank only, interference reduction only, TSV-M, each
  with alpha chosen on the validation split.
- :func:`method_table` — every merging method with alpha chosen on validation (the papers' main tables).

Every row carries ``accuracy`` plus the per-task reference numbers (``finetuned``, ``zeroshot``) and the per-task
``normalized`` (acc/acc_ft) and ``nai`` values; :func:`summarize_table` averages over tasks per setting.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from spectral.eval.evaluate import Evaluator, Progress, _noop
from spectral.metrics.accuracy import nai_value, normalised_accuracy_value

#: TSV Fig. 2: rank fractions kept per task, and full rank (1.0)
RANK_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0)
#: alpha grid of the papers' validation search (0.1 … 2.0 in steps of 0.1; TIES/TA optima are inside it)
ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 2) for i in range(1, 21))
#: Iso Fig. 6: fraction of the rank given to the common subspace
COMMON_FRACS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: default methods of :func:`method_table`
METHODS: tuple[str, ...] = (
    "weight_average", "task_arithmetic", "ties", "consensus", "tsv_m", "iso_c", "iso_cts", "cart",
)

COLUMNS_COMMON = ["task", "accuracy", "finetuned", "zeroshot", "normalized", "nai"]


def _task_row(task: str, acc: float, ft: Mapping[str, float], zs: Mapping[str, float]) -> dict[str, Any]:
    return {
        "task": task,
        "accuracy": acc,
        "finetuned": ft[task],
        "zeroshot": zs[task],
        "normalized": normalised_accuracy_value(acc, ft[task]),
        "nai": nai_value(acc, ft[task], zs[task]),
    }


def _has_alpha(method: str) -> bool:
    from spectral.methods import get_method

    return "alpha" in get_method(method).param_names


# ---------------------------------------------------------------------------------------------------------------
def rank_sweep(
    ev: Evaluator,
    fractions: Sequence[float] = RANK_FRACTIONS,
    *,
    tasks: Sequence[str] | None = None,
    split: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """TSV-C of every task at every rank fraction, evaluated on its own task (TSV Fig. 2).

    Columns: ``k_frac``, ``full_rank`` (k_frac = 1), ``task``, ``accuracy``, ``finetuned``, ``zeroshot``,
    ``normalized``, ``nai``; one row per fraction × task. At full rank TSV-C reconstructs Δ_t exactly (up to
    float rounding), so ``accuracy`` equals ``finetuned`` there.
    """
    progress = progress or _noop
    tasks = list(tasks) if tasks is not None else list(ev.pool.task_names)
    ft, zs = ev.finetuned(split), ev.zeroshot(split)
    rows = []
    total = len(fractions) * len(tasks)
    for i, frac in enumerate(fractions):
        for j, task in enumerate(tasks):
            progress(i * len(tasks) + j, total, f"TSV-C {task} k_frac={frac:g}")
            acc = ev.compressed(task, float(frac), split=split)
            rows.append({"k_frac": float(frac), "full_rank": float(frac) >= 1.0, **_task_row(task, acc, ft, zs)})
    progress(total, total, "rank sweep done")
    return pd.DataFrame(rows, columns=["k_frac", "full_rank", *COLUMNS_COMMON])


def alpha_sweep(
    ev: Evaluator,
    method: str,
    alphas: Sequence[float] = ALPHAS,
    *,
    params: Mapping[str, Any] | None = None,
    split: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Accuracy per task of ``method`` at every alpha (Iso Fig. 8, TSV Fig. 7).

    Columns: ``method``, ``alpha``, ``params`` (JSON of the other resolved parameters), then the per-task columns.
    A method without alpha (weight averaging) gives one setting whatever ``alphas`` is.
    """
    progress = progress or _noop
    params = dict(params or {})
    ft, zs = ev.finetuned(split), ev.zeroshot(split)
    grid = list(alphas) if _has_alpha(method) else [None]
    rows = []
    for i, alpha in enumerate(grid):
        progress(i, len(grid), f"{method} alpha={alpha}")
        accs = ev.merged(method, alpha=alpha, split=split, **params)
        resolved = ev.resolve(method, alpha, **params)
        a = resolved.pop("alpha", math.nan)
        for task in ev.pool.task_names:
            rows.append({"method": method, "alpha": float(a), "params": json.dumps(resolved, sort_keys=True),
                         **_task_row(task, accs[task], ft, zs)})
    progress(len(grid), len(grid), f"{method}: alpha sweep done")
    return pd.DataFrame(rows, columns=["method", "alpha", "params", *COLUMNS_COMMON])


def common_frac_sweep(
    ev: Evaluator,
    common_fracs: Sequence[float] = COMMON_FRACS,
    *,
    alphas: Sequence[float] | None = None,
    select_split: str = "val",
    split: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Iso-CTS at every ``common_frac`` (Iso Fig. 6). With ``alphas``, alpha is chosen per common_frac on
    ``select_split`` (as the paper tunes it); otherwise the method's default alpha is used.

    Columns: ``common_frac``, ``alpha``, then the per-task columns.
    """
    progress = progress or _noop
    ft, zs = ev.finetuned(split), ev.zeroshot(split)
    rows = []
    for i, cf in enumerate(common_fracs):
        progress(i, len(common_fracs), f"Iso-CTS common_frac={cf:g}")
        alpha = (best_alpha(ev, "iso_cts", alphas, params={"common_frac": float(cf)}, split=select_split)
                 if alphas else None)
        accs = ev.merged("iso_cts", alpha=alpha, split=split, common_frac=float(cf))
        a = ev.resolve("iso_cts", alpha, common_frac=float(cf))["alpha"]
        for task in ev.pool.task_names:
            rows.append({"common_frac": float(cf), "alpha": float(a), **_task_row(task, accs[task], ft, zs)})
    progress(len(common_fracs), len(common_fracs), "common_frac sweep done")
    return pd.DataFrame(rows, columns=["common_frac", "alpha", *COLUMNS_COMMON])


def best_alpha(
    ev: Evaluator,
    method: str,
    alphas: Sequence[float] | None = ALPHAS,
    *,
    params: Mapping[str, Any] | None = None,
    split: str = "val",
) -> float | None:
    """The alpha of ``alphas`` with the highest mean accuracy on ``split`` (ties → the smaller alpha), as the
    papers select alpha on held-out validation data. None for methods without alpha."""
    if not _has_alpha(method) or not alphas:
        return None
    best, best_acc = None, -math.inf
    pending = False
    for alpha in alphas:
        accs = ev.merged(method, alpha=float(alpha), split=split, **dict(params or {}))
        mean = sum(accs.values()) / len(accs)
        pending = pending or math.isnan(mean)
        if mean > best_acc + 1e-12:
            best, best_acc = float(alpha), mean
    if pending and hasattr(ev, "pending_alpha"):
        # planning a distributed sweep (spectral.eval.distributed): the choice waits for these results
        return ev.pending_alpha(alphas)
    return best


# ---------------------------------------------------------------------------------------------------------------
#: TSV Table 4 as engine calls: (variant, low-rank approximation, interference reduction, method, params)
ABLATION_VARIANTS: tuple[tuple[str, bool, bool, str, dict[str, Any]], ...] = (
    ("Task Arithmetic", False, False, "task_arithmetic", {}),
    ("Low-rank only", True, False, "tsv_low_rank", {}),  # Σ_t top-(r/T) reconstructions (TSV Eq. 5)
    ("Interference reduction only", False, True, "tsv_m", {"k_frac": 1.0}),  # full-rank Procrustes
    ("TSV-M", True, True, "tsv_m", {}),  # k = r/T, Procrustes (TSV Alg. 1)
)


def tsv_ablation(
    ev: Evaluator,
    *,
    alphas: Sequence[float] | None = ALPHAS,
    select_split: str = "val",
    split: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """TSV Table 4: each variant with alpha chosen on ``select_split``, evaluated on ``split``.

    Columns: ``variant``, ``low_rank``, ``interference_reduction``, ``method``, ``alpha``, ``params``, then the
    per-task columns.
    """
    progress = progress or _noop
    ft, zs = ev.finetuned(split), ev.zeroshot(split)
    rows = []
    for i, (variant, low_rank, interf, method, params) in enumerate(ABLATION_VARIANTS):
        progress(i, len(ABLATION_VARIANTS), variant)
        alpha = best_alpha(ev, method, alphas, params=params, split=select_split)
        accs = ev.merged(method, alpha=alpha, split=split, **params)
        resolved = ev.resolve(method, alpha, **params)
        a = resolved.pop("alpha", math.nan)
        for task in ev.pool.task_names:
            rows.append({"variant": variant, "low_rank": low_rank, "interference_reduction": interf,
                         "method": method, "alpha": float(a), "params": json.dumps(resolved, sort_keys=True),
                         **_task_row(task, accs[task], ft, zs)})
    progress(len(ABLATION_VARIANTS), len(ABLATION_VARIANTS), "ablation done")
    return pd.DataFrame(rows, columns=["variant", "low_rank", "interference_reduction", "method", "alpha", "params",
                                       *COLUMNS_COMMON])


def method_table(
    ev: Evaluator,
    methods: Iterable[str] = METHODS,
    *,
    alphas: Sequence[float] | None = ALPHAS,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    select_split: str = "val",
    split: str | None = None,
    include_references: bool = True,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every method with alpha chosen on ``select_split`` (``alphas=None``: each method's default alpha), plus
    zero-shot and fine-tuned rows. Columns: ``method``, ``alpha``, ``params``, then the per-task columns."""
    progress = progress or _noop
    methods = list(methods)
    params = params or {}
    ft, zs = ev.finetuned(split), ev.zeroshot(split)
    rows = []
    if include_references:
        for name, accs in (("zeroshot", zs), ("finetuned", ft)):
            for task in ev.pool.task_names:
                rows.append({"method": name, "alpha": math.nan, "params": "{}", **_task_row(task, accs[task], ft, zs)})
    for i, method in enumerate(methods):
        progress(i, len(methods), method)
        p = dict(params.get(method, {}))
        alpha = best_alpha(ev, method, alphas, params=p, split=select_split) if alphas else None
        accs = ev.merged(method, alpha=alpha, split=split, **p)
        resolved = ev.resolve(method, alpha, **p)
        a = resolved.pop("alpha", math.nan)
        for task in ev.pool.task_names:
            rows.append({"method": method, "alpha": float(a), "params": json.dumps(resolved, sort_keys=True),
                         **_task_row(task, accs[task], ft, zs)})
    progress(len(methods), len(methods), "methods done")
    return pd.DataFrame(rows, columns=["method", "alpha", "params", *COLUMNS_COMMON])


def summarize_table(df: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean over tasks of accuracy, normalized and nai per setting (``by``: every column that is not a per-task
    column, by default), plus ``nai_of_mean`` = (mean acc − mean acc_zs) / (mean acc_ft − mean acc_zs). Column
    ``tasks`` counts the tasks averaged."""
    per_task = set(COLUMNS_COMMON)
    by = list(by) if by is not None else [c for c in df.columns if c not in per_task]
    grouped = df.groupby(by, sort=False, dropna=False)
    out = grouped.agg(accuracy=("accuracy", "mean"), normalized=("normalized", "mean"), nai=("nai", "mean"),
                      finetuned=("finetuned", "mean"), zeroshot=("zeroshot", "mean"), tasks=("task", "count"))
    out = out.reset_index()
    # NAI of the task-averaged accuracies: stable when a task is saturated (acc_ft ≈ acc_zs makes its own NAI
    # explode); the per-task mean ``nai`` is the paper's Eq. 4 averaged.
    gap = out["finetuned"] - out["zeroshot"]
    out["nai_of_mean"] = (out["accuracy"] - out["zeroshot"]) / gap.where(gap != 0)
    return out


SWEEPS: dict[str, Callable[..., pd.DataFrame]] = {
    "rank": rank_sweep,
    "alpha": alpha_sweep,
    "common": common_frac_sweep,
    "ablation": tsv_ablation,
    "methods": method_table,
}
