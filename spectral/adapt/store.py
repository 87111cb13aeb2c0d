"""Adaptation results in the results store (:mod:`spectral.eval.results`).

A result is stored under the method name of its configuration (``adarank_ta``, ``adarank_cart``,
``adamerging_task_ta``, ``adamerging_layer_ta``, …; :attr:`AdaptConfig.result_method`) with parameters that pin it
down: every setting that shapes the optimisation, the steps done, the selection rule and selected step, the run id
(the checkpoint ``<cache>/adapt/<run_id>.safetensors`` holds its masks, λ and traces) and a hash of this package's
code. Accuracies are fractions in [0, 1], as every other entry of the store; they are computed after the selection
and never feed back into it.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import Tensor

from spectral.adapt.run import AdaptResult

log = logging.getLogger(__name__)

#: config fields that do not describe the produced model (left out of the stored parameters)
_DISPLAY_ONLY = ("checkpoint_every", "eval_every", "eval_images")

_ADAPT_VERSION: str | None = None


def adapt_version() -> str:
    """Short hash of the adaptation package's sources (a changed implementation is a different stored key)."""
    global _ADAPT_VERSION
    if _ADAPT_VERSION is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        _ADAPT_VERSION = h.hexdigest()[:12]
    return _ADAPT_VERSION


def result_params(result: AdaptResult, lambda_init: float | None = None) -> dict[str, Any]:
    """The stored parameters of a result (see the module docstring)."""
    params = {k: v for k, v in result.config.to_dict().items() if k not in _DISPLAY_ONLY}
    params.update({
        "lambda_init": lambda_init if lambda_init is not None else params.get("lambda_init"),
        "steps_done": result.step,
        "selected_step": result.selected_step,
        "run_id": result.run_id,
        "adapt_version": adapt_version(),
    })
    return params


def _store_path(cache_dir: Any) -> Path | None:
    return Path(cache_dir) / "results.sqlite" if cache_dir is not None else None


def evaluate_and_record(
    result: AdaptResult,
    evaluator: Any,
    *,
    evaluate: Callable[[Mapping[str, Tensor]], Mapping[str, float]] | None = None,
    lambda_init: float | None = None,
) -> dict[str, float]:
    """Test accuracy (fraction) per task of the result's selected model, looked up in or added to the results
    store behind ``evaluator`` (a :class:`spectral.eval.Evaluator`). ``evaluate`` (state dict → fractions) replaces
    the evaluator's own evaluation, e.g. to go through a workspace's lock."""
    params = result_params(result, lambda_init)

    def compute() -> tuple[dict[str, float], dict[str, int]]:
        if evaluate is None:
            return evaluator.accuracies(result.state_dict)
        accs = {t: float(a) for t, a in evaluate(result.state_dict).items()}
        counts = {t: len(evaluator.pool.dataset(t, evaluator.split)) for t in accs}
        return accs, counts

    return evaluator.lookup(result.config.result_method, params, compute)


def stored_results(pool: Any, *, store: Any = None, cache_dir: Any = None):
    """Every stored adaptation result of a pool as the store's long table (one row per run and task), with a
    ``label`` column ("TA+AdaRank", …) for plots next to the static merges."""
    from spectral.adapt.run import AdaptConfig
    from spectral.eval import ResultsStore, pool_fingerprint

    if not isinstance(store, ResultsStore):
        store = ResultsStore(store if store is not None else _store_path(cache_dir))
    df = store.to_dataframe(pool=pool_fingerprint(pool))
    df = df[df.method.str.startswith(("adarank_", "adamerging_"))].copy()
    if len(df):
        import json

        df["label"] = [AdaptConfig.from_dict(json.loads(p)).label for p in df["params"]]
    return df
