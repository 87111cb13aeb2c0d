"""Long-form tables of an adaptation result, for the figures, CSV export and the results store."""
from __future__ import annotations

from typing import Any

import pandas as pd

from spectral.adapt.run import AdaptResult
from spectral.taskset import block_index, layer_kind


def _label(key: str) -> str:
    block = block_index(key)
    kind = layer_kind(key)
    return f"{block}·{kind}" if block is not None else kind


def param_label(key: str) -> str:
    """Unique short name of any parameter: ``visual.transformer.resblocks.3.ln_1.weight`` → ``3·ln_1.weight``."""
    block = block_index(key)
    name = key[len("visual."):] if key.startswith("visual.") else key
    if block is not None:
        return f"{block}·" + name.split(f"resblocks.{block}.", 1)[1]
    return name


def mask_table(result: AdaptResult) -> pd.DataFrame:
    """One row per (layer, task, component): key, label, task, component, kept (0/1), initial (0/1)."""
    rows: list[dict[str, Any]] = []
    for key, mask in result.masks.items():
        init = result.initial_masks[key]
        label = _label(key)
        for t, task in enumerate(result.task_names):
            for j in range(mask.shape[-1]):
                rows.append({"key": key, "label": label, "task": task, "component": j,
                             "kept": int(mask[t, j]), "initial": int(init[t, j])})
    return pd.DataFrame(rows, columns=["key", "label", "task", "component", "kept", "initial"])


def kept_rank_table(result: AdaptResult) -> pd.DataFrame:
    """One row per (layer, task): kept components, initially kept, rank r, kept fraction."""
    rows = []
    for key, mask in result.masks.items():
        init = result.initial_masks[key]
        r = int(mask.shape[-1])
        for t, task in enumerate(result.task_names):
            kept = int(mask[t].sum())
            rows.append({"key": key, "label": _label(key), "block": block_index(key), "kind": layer_kind(key),
                         "task": task, "kept": kept, "initial": int(init[t].sum()), "rank": r,
                         "fraction": kept / r if r else 0.0})
    return pd.DataFrame(rows, columns=["key", "label", "block", "kind", "task", "kept", "initial", "rank",
                                       "fraction"])


def lambda_table(result: AdaptResult) -> pd.DataFrame:
    """One row per (parameter, task): the learned coefficient λ."""
    lam = result.lambdas
    rows = [{"key": key, "label": param_label(key), "task": task, "lambda": float(lam[t, p])}
            for p, key in enumerate(result.lambda_keys) for t, task in enumerate(result.task_names)]
    return pd.DataFrame(rows, columns=["key", "label", "task", "lambda"])


def trace_table(result: AdaptResult | dict[str, Any]) -> pd.DataFrame:
    """Long table of every trace: step, series, task ('' for sums), value, uses_labels (True only for the
    test-accuracy trace, which is for display and never used to select)."""
    traces = result.traces if isinstance(result, AdaptResult) else result
    rows: list[dict[str, Any]] = []
    for s, v in zip(traces["step"], traces["entropy"]):
        rows.append({"step": s, "series": "train entropy (Σ tasks)", "task": "", "value": v, "uses_labels": False})
    for task, values in traces["task_entropy"].items():
        for s, v in zip(traces["step"], values):
            rows.append({"step": s, "series": "train entropy", "task": task, "value": v, "uses_labels": False})
    for s, v in zip(traces["select_step"], traces["select_entropy"]):
        rows.append({"step": s, "series": "selection entropy (Σ tasks)", "task": "", "value": v,
                     "uses_labels": False})
    for task, values in traces["test_accuracy"].items():
        for s, v in zip(traces["acc_step"], values):
            rows.append({"step": s, "series": "test accuracy", "task": task, "value": v, "uses_labels": True})
    return pd.DataFrame(rows, columns=["step", "series", "task", "value", "uses_labels"])
