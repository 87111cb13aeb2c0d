"""The SQLite results store: caching, invalidation, export, two processes at once."""
from __future__ import annotations

import multiprocessing as mp

import pandas as pd

from spectral.eval.results import ResultKey, ResultsStore, canonical_params, code_version


def test_canonical_params():
    assert canonical_params({"b": 1, "a": 0.1}) == canonical_params({"a": 0.1000000000001, "b": 1})
    assert canonical_params({"a": 0.1}) != canonical_params({"a": 0.2})
    assert canonical_params({"x": True, "y": "s", "z": None}) == '{"x":true,"y":"s","z":null}'
    assert len(code_version()) == 16 and code_version() == code_version()


def test_get_or_compute_caches_and_invalidates(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    calls = []

    def compute():
        calls.append(1)
        return {"a": 0.5, "b": 0.75}, {"a": 10, "b": 20}

    key = ResultKey.make("pool1", "tsv_m", {"alpha": 1.0, "k_frac": 0.125}, "test", "v1")
    r1 = store.get_or_compute(key, compute, pool_name="zoo-2")
    r2 = store.get_or_compute(key, compute)
    assert len(calls) == 1
    assert r1.accuracies == r2.accuracies == {"a": 0.5, "b": 0.75} and r2.counts == {"a": 10, "b": 20}
    assert r2.pool_name == "zoo-2"
    # a fresh store object on the same file (another process, a restart) still hits
    assert ResultsStore(tmp_path / "r.sqlite").get_or_compute(key, compute).accuracies == r1.accuracies
    assert len(calls) == 1
    # any change of the key is a miss
    for other in (
        ResultKey.make("pool1", "tsv_m", {"alpha": 1.1, "k_frac": 0.125}, "test", "v1"),  # params
        ResultKey.make("pool2", "tsv_m", {"alpha": 1.0, "k_frac": 0.125}, "test", "v1"),  # pool content
        ResultKey.make("pool1", "tsv_m", {"alpha": 1.0, "k_frac": 0.125}, "test", "v2"),  # code version
        ResultKey.make("pool1", "tsv_m", {"alpha": 1.0, "k_frac": 0.125}, "val", "v1"),  # split
        ResultKey.make("pool1", "iso_c", {"alpha": 1.0, "k_frac": 0.125}, "test", "v1"),  # method
    ):
        assert store.get(other) is None
        store.get_or_compute(other, compute)
    assert len(calls) == 6 and len(store) == 6
    assert store.prune("v1") == 1 and len(store) == 5
    assert store.delete(pool="pool2") == 1 and len(store) == 4


def test_put_keeps_the_first_result(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    key = ResultKey.make("p", "m", {}, "test", "v")
    store.put(key, {"a": 0.1})
    assert store.put(key, {"a": 0.9}).accuracies == {"a": 0.1}


def test_export_dataframe_and_csv(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.put(ResultKey.make("p", "tsv_m", {"alpha": 1.0, "k_frac": 0.1}, "test", "v"), {"a": 0.5, "b": 0.25})
    store.put(ResultKey.make("p", "task_arithmetic", {"alpha": 0.3}, "test", "v"), {"a": 0.4, "b": 0.2})
    df = store.to_dataframe()
    assert len(df) == 4
    assert {"pool", "method", "params", "split", "code_version", "task", "accuracy", "param_alpha",
            "param_k_frac"} <= set(df.columns)
    assert df[df.method == "tsv_m"].accuracy.tolist() == [0.5, 0.25]
    assert len(store.to_dataframe(method="task_arithmetic")) == 2
    path = store.to_csv(tmp_path / "out" / "r.csv")
    back = pd.read_csv(path)
    assert len(back) == 4 and back.accuracy.sum() == df.accuracy.sum()
    assert len(ResultsStore(tmp_path / "empty.sqlite").to_dataframe()) == 0


def _writer(path: str, worker: int, n: int) -> None:
    store = ResultsStore(path)
    for i in range(n):
        # half the keys are shared between the workers, half are their own
        key = ResultKey.make("p", "m", {"i": i if i % 2 else f"{worker}-{i}"}, "test", "v")
        store.get_or_compute(key, lambda: ({"t": float(worker)}, {"t": 1}))


def test_two_processes_at_once(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ResultsStore(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 30)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    store = ResultsStore(path)
    assert len(store) == 15 + 15 + 15  # 15 shared + 15 own per worker
    df = store.to_dataframe()
    assert df.groupby("run").size().eq(1).all()  # every run has exactly its one task row
    with store._connect() as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
