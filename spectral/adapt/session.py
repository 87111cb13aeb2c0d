"""Glue between adaptation runs and a dashboard workspace (:class:`spectral.app_state.Workspace`): the
process-wide run registry, evaluation of a finished run's selected model, and storing it. No Streamlit here."""
from __future__ import annotations

import logging
import threading
from typing import Any, Hashable

from spectral.adapt.registry import RunRegistry
from spectral.adapt.run import AdaptConfig, Adaptation, AdaptResult

log = logging.getLogger(__name__)

_REGISTRY: RunRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def shared_registry() -> RunRegistry:
    """The process-wide :class:`RunRegistry` (the dashboard wraps it in ``st.cache_resource``)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = RunRegistry(bounded=True)  # the dashboard's runs share the server's job queue
        return _REGISTRY


def adaptation_for(ws: Any, config: AdaptConfig) -> Adaptation:
    """An :class:`Adaptation` of the workspace's engine and pool (its checkpoints in the workspace's cache)."""
    return Adaptation(ws.engine, ws.pool, config, cache_dir=ws.cache_dir)


def accuracy_key(result: AdaptResult) -> Hashable:
    """Memo key of the selected model's accuracies (changes with the step reached and the selection)."""
    return ("adapt-accuracy", result.run_id, result.step, result.selection, result.selected_step)


def evaluate_result(ws: Any, result: AdaptResult, progress: Any = None) -> dict[str, float]:
    """Test accuracy (%) per task of the selected model, recorded in the results store and memoised in the
    workspace. This uses labels and happens after the selection; nothing feeds back into the run."""
    from spectral.adapt.store import evaluate_and_record

    def compute(p: Any) -> dict[str, float]:
        def fractions_of(state_dict: Any) -> dict[str, float]:
            return {t: a / 100.0 for t, a in ws.evaluate(state_dict, progress=p).items()}

        fractions = evaluate_and_record(result, ws.evaluator, evaluate=fractions_of,
                                        lambda_init=adaptation_for(ws, result.config).lambda_init)
        return {t: 100.0 * a for t, a in fractions.items()}

    return ws.cached(accuracy_key(result), compute, progress)


def base_accuracy(ws: Any, result: AdaptResult, progress: Any = None) -> dict[str, float]:
    """Accuracy (%) of the static base merge the run started from (Task Arithmetic or CART at λ = λ_init)."""
    run = adaptation_for(ws, result.config)
    params: dict[str, Any] = {"alpha": run.lambda_init}
    if result.config.base == "cart":
        params["k_frac"] = result.config.k_frac
    return ws.accuracies(result.config.base, params, progress)


def evaluate_and_store(ws: Any, result: AdaptResult) -> None:
    """``on_done`` of a background run: evaluate the selected model into the results store (best effort: the run
    and its checkpoint stand either way)."""
    try:
        evaluate_result(ws, result)
    except Exception:  # noqa: BLE001
        log.exception("evaluating / storing adaptation result %s", result.run_id)


def stored_adaptations(ws: Any) -> Any:
    """The workspace pool's stored adaptation results that sit next to its static merges: same evaluation split,
    same code version (:func:`spectral.adapt.store.stored_results`' long table; empty without a results store)."""
    from spectral.adapt.store import stored_results

    if ws.evaluator is None:
        ws.open()
    ev = ws.evaluator
    if ev.store is None:  # the store could not be opened: nothing was kept across runs
        import pandas as pd

        return pd.DataFrame(columns=["run", "method", "params", "created", "task", "accuracy", "label", "ref"])
    return stored_results(ws.pool, store=ev.store, split=ws.eval_split, code_version=ev.version)
