"""Sweeps and cache builds on a real two-node loopback Ray cluster equal the local ones (tests/ray/conftest.py).

The tests share one cluster; the node-removal test runs last because it takes the worker node away.
"""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from spectral.eval import sweeps
from spectral.eval.distributed import open_pool_spec, run_sweep
from spectral.eval.evaluate import Evaluator
from spectral.eval.results import ResultsStore
from spectral.executor import LocalExecutor, RayExecutor

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a cluster start and worker processes importing torch: about a minute in all

POOL = "zoo-micro"
FRACTIONS = (0.1, 0.5, 1.0)


@pytest.fixture(scope="module")
def pool(shared_cache):
    return open_pool_spec(POOL, cache_dir=shared_cache)


@pytest.fixture(scope="module")
def local_table(pool, shared_cache):
    ev = Evaluator(pool, store=False, cache_dir=shared_cache, device="cpu")
    return run_sweep(ev, lambda e: sweeps.rank_sweep(e, FRACTIONS), LocalExecutor(), pool_spec=POOL)


def _alive_nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _ray_sweep(pool, cache, store, fractions=FRACTIONS, progress=None):
    ev = Evaluator(pool, store=store, cache_dir=cache, device="cpu")
    executor = RayExecutor(ray.get_runtime_context().gcs_address)
    table = run_sweep(ev, lambda e: sweeps.rank_sweep(e, fractions), executor, pool_spec=POOL, progress=progress)
    return table, executor


def test_rank_sweep_on_two_nodes_equals_local(cluster, pool, shared_cache, local_table, tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    table, executor = _ray_sweep(pool, shared_cache, store)
    pd.testing.assert_frame_equal(table, local_table)
    points = len(FRACTIONS) * len(pool.task_names) + 2  # + zero-shot and fine-tuned references
    assert executor.units_run == points == len(store)
    rows = store.to_dataframe()
    assert set(rows["node"]) == _alive_nodes() and len(_alive_nodes()) == 2  # ran on head and worker
    assert executor.summary_line() == f"ran {points} points on 2 Ray nodes"

    # a rerun of a finished sweep computes nothing and returns the same table
    again, rerun = _ray_sweep(pool, shared_cache, store)
    assert rerun.units_run == 0 and len(store) == points
    pd.testing.assert_frame_equal(again, local_table)


def test_alpha_selection_plans_in_rounds(cluster, pool, shared_cache, tmp_path):
    """A sweep that chooses alpha on validation needs the validation results first: the planner asks for them,
    then for the chosen alpha on test only (no other test point)."""
    alphas = (0.3, 1.0)
    local = Evaluator(pool, store=False, cache_dir=shared_cache, device="cpu")
    expected = sweeps.common_frac_sweep(local, (0.2,), alphas=alphas)
    store = ResultsStore(tmp_path / "results.sqlite")
    ev = Evaluator(pool, store=store, cache_dir=shared_cache, device="cpu")
    executor = RayExecutor(ray.get_runtime_context().gcs_address)
    table = run_sweep(ev, lambda e: sweeps.common_frac_sweep(e, (0.2,), alphas=alphas), executor, pool_spec=POOL)
    pd.testing.assert_frame_equal(table, expected)
    rows = store.to_dataframe()
    merged = rows[rows["method"] == "iso_cts"].drop_duplicates("run")
    assert sorted(merged["split"]) == ["test", "val", "val"]
    assert executor.units_run == len(store) == 3 + 2


def test_cache_build_on_ray_fills_the_same_entries(cluster, shared_cache, tmp_path, monkeypatch):
    from spectral.cli import main

    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(shared_cache))  # where the driver finds the zoo
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["cache", "build", "--pool", POOL, "--cache-dir", str(local), "--device", "cpu"]) == 0
    assert main(["cache", "build", "--pool", POOL, "--cache-dir", str(remote), "--device", "cpu",
                 "--ray", ray.get_runtime_context().gcs_address]) == 0

    def entries(root):
        return sorted(p.relative_to(root / "svd").as_posix() for p in (root / "svd").rglob("*.safetensors"))

    assert entries(local) and entries(remote) == entries(local)


def test_removing_the_worker_node_mid_sweep_still_completes(cluster, shared_cache, local_table, tmp_path):
    # a cache of its own: workers open the pool again and compute SVDs, so units are still running when the
    # worker node goes away
    cache = tmp_path / "cache"
    shutil.copytree(shared_cache / "zoo", cache / "zoo")
    pool = open_pool_spec(POOL, cache_dir=cache)
    store = ResultsStore(tmp_path / "results.sqlite")
    points = len(FRACTIONS) * len(pool.task_names) + 2
    removed = []

    def progress(done: int, total: int, text: str) -> None:
        if done >= 1 and not removed:
            cluster.remove_node(cluster.worker_node)
            removed.append(done)

    table, executor = _ray_sweep(pool, cache, store, progress=progress)
    assert removed and removed[0] < points and len(_alive_nodes()) == 1
    pd.testing.assert_frame_equal(table, local_table)
    assert executor.units_run == points == len(store)  # every point exactly once
    keys = store.to_dataframe().drop_duplicates("run")[["method", "params", "split"]]
    assert not keys.duplicated().any()
