"""Adaptation results in the results store."""
from __future__ import annotations

from spectral.adapt import AdaptConfig, run_adaptation
from spectral.adapt.store import evaluate_and_record, result_params, stored_results
from spectral.eval import Evaluator, ResultsStore


def test_results_are_stored_once_with_their_identity(engine, synthetic_pool, tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    evaluator = Evaluator(synthetic_pool, engine=engine, store=store, device="cpu")
    result = run_adaptation(engine, synthetic_pool, AdaptConfig(base="cart", steps=2), cache_dir=tmp_path)
    acc = evaluate_and_record(result, evaluator, lambda_init=1.0)
    assert set(acc) == set(synthetic_pool.task_names) and all(0.0 <= a <= 1.0 for a in acc.values())
    assert evaluator.evaluations == 1
    assert evaluate_and_record(result, evaluator, lambda_init=1.0) == acc and evaluator.evaluations == 1
    params = result_params(result, 1.0)
    assert params["run_id"] == result.run_id and params["steps_done"] == 2 and "eval_every" not in params
    table = stored_results(synthetic_pool, store=store)
    assert set(table.method) == {"adarank_cart"} and set(table.label) == {"CART+AdaRank"}
    assert len(table) == len(synthetic_pool.task_names)
