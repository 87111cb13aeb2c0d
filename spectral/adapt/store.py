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
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
from torch import Tensor

from spectral.adapt.run import AdaptResult
from spectral.errors import ParameterError

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
    store behind ``evaluator`` (a :class:`spectral.eval.Evaluator`), with the model's merged state dict, masks, λ
    and traces written under :func:`artifacts_dir`. ``evaluate`` (state dict → fractions) replaces the evaluator's
    own evaluation, e.g. to go through a workspace's lock."""
    params = result_params(result, lambda_init)

    def compute() -> tuple[dict[str, float], dict[str, int]]:
        if evaluate is None:
            return evaluator.accuracies(result.state_dict)
        accs = {t: float(a) for t, a in evaluate(result.state_dict).items()}
        counts = {t: len(evaluator.pool.dataset(t, evaluator.split)) for t in accs}
        return accs, counts

    accuracies = evaluator.lookup(result.config.result_method, params, compute)
    if evaluator.store is not None:
        try:
            save_artifacts(result, evaluator.store.path, accuracies)
        except OSError as err:  # the accuracies stand; the outputs can be downloaded from the page
            log.warning("could not write the outputs of %s next to the results store: %s", result.run_id, err)
    return accuracies


def stored_results(pool: Any, *, store: Any = None, cache_dir: Any = None, split: str | None = None,
                   code_version: str | None = None):
    """Every stored adaptation result of a pool as the store's long table (one row per run and task), with a
    ``label`` column ("TA+AdaRank", …) for plots next to the static merges and the model's ``ref``
    (:func:`result_ref`). ``split`` and ``code_version``
    narrow it to the results comparable with the static merges of this code."""
    from spectral.adapt.run import AdaptConfig
    from spectral.eval import ResultsStore, pool_fingerprint

    if not isinstance(store, ResultsStore):
        store = ResultsStore(store if store is not None else _store_path(cache_dir))
    df = store.to_dataframe(pool=pool_fingerprint(pool), split=split, code_version=code_version)
    df = df[df.method.str.startswith(("adarank_", "adamerging_"))].copy()
    params = [json.loads(p) for p in df["params"]]
    df["label"] = [AdaptConfig.from_dict(p).label for p in params]
    df["ref"] = [result_ref(p["run_id"], p["selected_step"]) for p in params]
    return df


def result_ref(run_id: str, selected_step: int) -> str:
    """How a figure's settings name one adapted model: ``<run_id>@<selected_step>``. The optimisation is
    deterministic, so the run and the selected step fix the model, whatever the horizon and selection rule that
    picked it (a run resumed to more steps that selects the same step is the same model)."""
    return f"{run_id}@{int(selected_step)}"


def artifacts_dir(store_path: str | Path, ref: str) -> Path:
    """Where a stored result's merged state dict, masks, λ and traces live: ``adapt/results/<ref>/`` next to the
    results database (``<cache>/results.sqlite``)."""
    return Path(store_path).parent / "adapt" / "results" / ref.replace("/", "_")


def save_artifacts(result: AdaptResult, store_path: str | Path, accuracies: Mapping[str, float]) -> Path:
    """Write the selected model's outputs (:func:`spectral.adapt.outputs.save_result`) under
    :func:`artifacts_dir` once: into a temporary folder renamed into place, so a folder that exists is complete
    and a later resume of the run (which rewrites its checkpoint) cannot change it."""
    import shutil
    import tempfile

    from spectral.adapt.outputs import save_result

    final = artifacts_dir(store_path, result_ref(result.run_id, result.selected_step))
    if (final / "summary.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        save_result(result, tmp, accuracies=dict(accuracies))
        if final.exists():  # an incomplete folder from a crash before this code wrote atomically
            shutil.rmtree(final)
        tmp.replace(final)
    except FileExistsError:  # another process won the race with the same content
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def adapted_runs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per stored adaptation result of :func:`stored_results`' table, newest first: ref
    (:func:`result_ref`), label, name (the label, with " · run, step" where two results share it), method,
    steps_done, selection, selected_step, created, mean_accuracy (%, over tasks). Results that are the same model
    (:func:`result_ref`) appear once, as stored last."""
    columns = ["ref", "label", "name", "method", "steps_done", "selection", "selected_step", "created",
               "mean_accuracy"]
    if not len(results):
        return pd.DataFrame(columns=columns)
    rows: dict[str, dict[str, Any]] = {}
    for run, group in results.groupby("run", sort=False):
        params = json.loads(group["params"].iloc[0])
        ref = group["ref"].iloc[0]
        row = {"ref": ref, "label": group["label"].iloc[0], "method": group["method"].iloc[0],
               "steps_done": int(params["steps_done"]), "selection": params["selection"],
               "selected_step": int(params["selected_step"]),
               "created": float(group["created"].max()), "mean_accuracy": 100.0 * float(group["accuracy"].mean())}
        if ref not in rows or row["created"] > rows[ref]["created"]:
            rows[ref] = row
    table = pd.DataFrame(list(rows.values())).sort_values("created", ascending=False, kind="stable")
    shared = table["label"].duplicated(keep=False)
    table["name"] = [f"{lab} · {ref.split('@')[0][:6]}, step {step}" if dup else lab
                     for lab, ref, step, dup in zip(table["label"], table["ref"], table["selected_step"], shared)]
    return table[columns].reset_index(drop=True)


def adapted_accuracies(results: pd.DataFrame, ref: str) -> dict[str, float]:
    """Per-task accuracy (fraction) of the stored result ``ref`` (:func:`result_ref`) in :func:`stored_results`'
    table; the newest entry when it was stored more than once. :class:`ParameterError` names the known refs."""
    rows = results[results["ref"] == ref]
    if not len(rows):
        known = list(adapted_runs(results)["ref"])
        raise ParameterError(f"no stored adaptation result {ref!r} for this pool (stored: {known or 'none'}); "
                             "run it on the Adaptation page or with `python -m spectral adapt run`")
    newest = rows[rows["run"] == rows.loc[rows["created"].idxmax(), "run"]]
    return {str(t): float(a) for t, a in zip(newest["task"], newest["accuracy"])}
