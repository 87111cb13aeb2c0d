"""The executor seam without a cluster: planning of missing points, resuming, node column (fast)."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from spectral.eval import sweeps
from spectral.eval.distributed import compute_missing, open_pool_spec, run_sweep
from spectral.eval.evaluate import Evaluator
from spectral.eval.results import ResultKey, ResultsStore
from spectral.executor import LocalExecutor, RAY_ADDRESS_ENV, Unit, get_executor, ray_address

POOL = "zoo-micro"


@pytest.fixture(scope="module")
def pool(shared_cache):
    return open_pool_spec(POOL, cache_dir=shared_cache)


def _double(x: int) -> int:
    return 2 * x


def test_local_executor_runs_units_in_order_and_counts_progress():
    seen = []
    ex = LocalExecutor()
    done = list(ex.run([Unit(key=i, fn=_double, kwargs={"x": i}) for i in range(3)],
                       lambda i, n, text: seen.append((i, n))))
    assert [d.value for d in done] == [0, 2, 4] and {d.node for d in done} == {"local"}
    assert seen[-1] == (3, 3) and ex.units_run == 3
    assert ex.summary_line() == "ran 3 points on 1 Ray nodes"


def test_missing_points_are_planned_computed_once_and_not_again(pool, shared_cache, tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    ev = Evaluator(pool, store=store, cache_dir=shared_cache, device="cpu")

    def sweep(e):
        return sweeps.rank_sweep(e, (0.5,))

    computed = compute_missing(ev, sweep, LocalExecutor(), pool_spec=POOL)
    assert computed == len(pool.task_names) + 2 == len(store)  # TSV-C per task + zero-shot and fine-tuned
    assert set(store.to_dataframe()["node"]) == {"local"}
    assert compute_missing(ev, sweep, LocalExecutor(), pool_spec=POOL) == 0  # a rerun computes nothing
    direct = sweeps.rank_sweep(Evaluator(pool, store=False, cache_dir=shared_cache, device="cpu"), (0.5,))
    pd.testing.assert_frame_equal(sweep(ev), direct)


def test_alpha_chosen_on_validation_is_planned_in_two_rounds(pool, shared_cache, tmp_path):
    alphas = (0.3, 1.0)
    store = ResultsStore(tmp_path / "results.sqlite")
    ev = Evaluator(pool, store=store, cache_dir=shared_cache, device="cpu")

    def sweep(e):
        return sweeps.common_frac_sweep(e, (0.2,), alphas=alphas)

    assert compute_missing(ev, sweep, LocalExecutor(), pool_spec=POOL) == 2 + 1 + 2  # val ×2, test ×1, refs
    chosen = store.to_dataframe(method="iso_cts", split="test").drop_duplicates("run")["param_alpha"].tolist()
    expected = sweeps.common_frac_sweep(Evaluator(pool, store=False, cache_dir=shared_cache, device="cpu"), (0.2,),
                                        alphas=alphas)
    assert chosen == [expected["alpha"].iloc[0]]
    pd.testing.assert_frame_equal(sweep(ev), expected)


def test_run_sweep_with_the_local_executor_is_the_plain_sweep(pool, shared_cache):
    ev = Evaluator(pool, store=False, cache_dir=shared_cache, device="cpu")
    table = run_sweep(ev, lambda e: sweeps.rank_sweep(e, (1.0,)), LocalExecutor(), pool_spec=POOL)
    assert (table["accuracy"] == table["finetuned"]).all()  # full-rank TSV-C is the fine-tuned model


def test_results_store_gains_the_node_column(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, pool TEXT NOT NULL, pool_name TEXT NOT NULL DEFAULT '',
            method TEXT NOT NULL, params TEXT NOT NULL, split TEXT NOT NULL, code_version TEXT NOT NULL,
            created REAL NOT NULL, seconds REAL NOT NULL, UNIQUE (pool, method, params, split, code_version));
        INSERT INTO runs (pool, method, params, split, code_version, created, seconds)
            VALUES ('p', 'zeroshot', '{}', 'test', 'v', 0, 0);
    """)
    con.close()
    store = ResultsStore(path)
    ResultsStore(path)  # a second opening (another process) finds the column there
    old = store.get(ResultKey("p", "zeroshot", "{}", "test", "v"))
    assert old is not None and old.node == ""
    new = store.put(ResultKey.make("p", "tsv_m", {"alpha": 1.0}, "test", "v"), {"a": 0.5}, node="n1")
    assert new.node == "n1"


def test_the_address_comes_from_the_flag_or_the_environment(monkeypatch):
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert ray_address(None) is None and isinstance(get_executor(None), LocalExecutor)
    monkeypatch.setenv(RAY_ADDRESS_ENV, "10.0.0.1:6379")
    assert ray_address(None) == "10.0.0.1:6379" and ray_address("local") == "local"
