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


def test_adapted_runs_list_each_result_once_and_name_duplicates(engine, synthetic_pool, tmp_path):
    import pytest

    from spectral.adapt.store import adapted_accuracies, adapted_runs, result_ref
    from spectral.errors import ParameterError

    store = ResultsStore(tmp_path / "results.sqlite")
    evaluator = Evaluator(synthetic_pool, engine=engine, store=store, device="cpu")
    assert adapted_runs(stored_results(synthetic_pool, store=store)).empty
    short = run_adaptation(engine, synthetic_pool, AdaptConfig(steps=1), cache_dir=tmp_path)
    acc_short = evaluate_and_record(short, evaluator, lambda_init=0.3)
    longer = run_adaptation(engine, synthetic_pool, AdaptConfig(steps=3), cache_dir=tmp_path)
    acc_longer = evaluate_and_record(longer, evaluator, lambda_init=0.3)
    merging = run_adaptation(engine, synthetic_pool, AdaptConfig(method="adamerging", lambda_mode="task", steps=1),
                             cache_dir=tmp_path)
    evaluate_and_record(merging, evaluator, lambda_init=0.3)

    results = stored_results(synthetic_pool, store=store)
    runs = adapted_runs(results)
    assert len(runs) == 3 and runs["ref"].is_unique
    assert list(runs["ref"])[0] == result_ref(merging.run_id, 1)  # newest first
    names = dict(zip(runs["ref"], runs["name"]))
    assert names[result_ref(merging.run_id, 1)] == "TA+AdaMerging (task-wise)"
    # two TA+AdaRank results: each name says which run and how many steps
    assert short.run_id == longer.run_id  # the same run, resumed: two models along one trajectory
    assert names[result_ref(short.run_id, 1)] == f"TA+AdaRank · {short.run_id[:6]}, step 1"
    assert names[result_ref(longer.run_id, 3)] == f"TA+AdaRank · {longer.run_id[:6]}, step 3"
    mean = runs.set_index("ref").mean_accuracy[result_ref(short.run_id, 1)]
    assert mean == pytest.approx(100 * sum(acc_short.values()) / len(acc_short))

    assert adapted_accuracies(results, result_ref(longer.run_id, 3)) == pytest.approx(acc_longer)
    with pytest.raises(ParameterError, match=r"no stored adaptation result 'x@1'.*stored: \["):
        adapted_accuracies(results, "x@1")
    # other code versions and splits are left out when asked
    assert stored_results(synthetic_pool, store=store, code_version="other").empty
    assert stored_results(synthetic_pool, store=store, split="val").empty


def test_each_recorded_model_keeps_its_outputs_next_to_the_store(engine, synthetic_pool, tmp_path):
    import json

    import torch
    from safetensors.torch import load_file

    from spectral.adapt.store import artifacts_dir, result_ref

    store = ResultsStore(tmp_path / "results.sqlite")
    evaluator = Evaluator(synthetic_pool, engine=engine, store=store, device="cpu")
    first = run_adaptation(engine, synthetic_pool, AdaptConfig(steps=2), cache_dir=tmp_path)
    acc = evaluate_and_record(first, evaluator, lambda_init=0.3)
    folder = artifacts_dir(store.path, result_ref(first.run_id, 2))
    assert folder.parent == tmp_path / "adapt" / "results"
    assert {p.name for p in folder.iterdir()} == {"merged.safetensors", "masks.safetensors", "lambdas.safetensors",
                                                 "traces.json", "summary.json"}
    merged = load_file(folder / "merged.safetensors")
    assert all(torch.equal(merged[k], v) for k, v in first.state_dict.items())
    masks = load_file(folder / "masks.safetensors")
    assert all(torch.equal(masks[k].bool(), m) for k, m in first.masks.items())
    assert torch.equal(load_file(folder / "lambdas.safetensors")["lambda"], first.lambdas)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["accuracy"] == acc and summary["selected_step"] == 2
    assert json.loads((folder / "traces.json").read_text())["step"] == [1, 2]
    before = (folder / "masks.safetensors").read_bytes()

    # resuming the run rewrites its checkpoint, not the outputs of the model already recorded
    later = run_adaptation(engine, synthetic_pool, AdaptConfig(steps=4), cache_dir=tmp_path)
    evaluate_and_record(later, evaluator, lambda_init=0.3)
    assert (folder / "masks.safetensors").read_bytes() == before
    assert (artifacts_dir(store.path, result_ref(later.run_id, 4)) / "summary.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
