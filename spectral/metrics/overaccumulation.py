"""Spectral over-accumulation of a merge (SVC, Li et al. 2026, Eq. 8): tables of s_r^t and of the merge's spectrum
before and after Singular Value Calibration, for one layer."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from spectral.methods.base import LayerFactors
from spectral.methods.svc import SVCLayer, svc_layer
from spectral.methods import get_method


def resolve_svc_params(params: Mapping[str, Any], num_tasks: int) -> tuple[str, float, float, dict[str, Any]]:
    """(base, alpha, svc_alpha, base parameters) from SVC's parameters, defaults filled and ranges checked."""
    resolved = dict(get_method("svc").resolve_params(params, num_tasks))
    base = str(resolved.pop("base"))
    alpha = float(resolved.pop("alpha"))
    svc_alpha = float(resolved.pop("svc_alpha"))
    return base, alpha, svc_alpha, resolved


def svc_calibration(layer: LayerFactors, params: Mapping[str, Any]) -> SVCLayer:
    """The SVC calibration of one layer's base merge (factors from the engine's cache when ``layer`` is cached)."""
    base, alpha, svc_alpha, base_params = resolve_svc_params(params, layer.num_tasks)
    return svc_layer(layer, base, svc_alpha, alpha, base_params)


def coefficient_table(calibrated: SVCLayer, task_names: list[str], *, components: int | None = None) -> pd.DataFrame:
    """Long table of s_r^t: one row per (task, component r) for the leading ``components`` directions of the merge,
    with σ_r and γ_r of that direction."""
    coeffs = calibrated.coefficients.double().cpu()
    R = coeffs.shape[1] if components is None else min(int(components), coeffs.shape[1])
    S, gamma = calibrated.S.double().cpu(), calibrated.gamma.double().cpu()
    rows = [{"task": task, "component": r + 1, "s": float(coeffs[t, r]), "sigma": float(S[r]),
             "gamma": float(gamma[r])} for t, task in enumerate(task_names) for r in range(R)]
    return pd.DataFrame(rows, columns=["task", "component", "s", "sigma", "gamma"])


def spectrum_table(calibrated: SVCLayer) -> pd.DataFrame:
    """The merge's singular values before (σ_r) and after calibration (γ_r σ_r), long format."""
    S = calibrated.S.double().cpu()
    after = calibrated.calibrated_sigmas.double().cpu()
    gamma = calibrated.gamma.double().cpu()
    rows = [{"index": r + 1, "which": which, "sigma": float(v[r]), "gamma": float(gamma[r])}
            for which, v in (("before", S), ("after", after)) for r in range(S.numel())]
    return pd.DataFrame(rows, columns=["index", "which", "sigma", "gamma"])
