"""Subsample estimates in the results store: schema migration of version-1 databases, estimates and exact
numbers side by side, and the Evaluator's subsample argument."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from folder_pool import FolderPool  # noqa: E402

from spectral.eval.evaluate import Evaluator  # noqa: E402
from spectral.eval.results import SCHEMA_VERSION, ResultKey, ResultsStore  # noqa: E402
from spectral.metrics.estimate import wilson_interval  # noqa: E402

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pool TEXT NOT NULL, pool_name TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL, params TEXT NOT NULL, split TEXT NOT NULL, code_version TEXT NOT NULL,
    created REAL NOT NULL, seconds REAL NOT NULL, UNIQUE (pool, method, params, split, code_version));
CREATE TABLE accuracies (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, task TEXT NOT NULL, accuracy REAL NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (run_id, task));
CREATE INDEX runs_pool_method ON runs (pool, method);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs VALUES (7, 'p', 'zoo-2', 'tsv_m', '{"alpha":1.0}', 'test', 'v1', 1.0, 2.0);
INSERT INTO accuracies VALUES (7, 'a', 0.5, 10), (7, 'b', 0.25, 20);
"""


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.close()
    store = ResultsStore(path)
    key = ResultKey.make("p", "tsv_m", {"alpha": 1.0}, "test", "v1")
    old = store.get(key)
    assert old is not None and old.accuracies == {"a": 0.5, "b": 0.25} and old.counts == {"a": 10, "b": 20}
    assert not old.is_subsample and old.seconds == 2.0 and old.pool_name == "zoo-2"
    # the same key as a subsample estimate is a different result; both stay
    est = ResultKey.make("p", "tsv_m", {"alpha": 1.0}, "test", "v1", subsample=5)
    store.put(est, {"a": 0.6, "b": 0.2}, counts={"a": 5, "b": 5})
    assert store.get(est).is_subsample and store.get(key).accuracies == {"a": 0.5, "b": 0.25}
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    ResultsStore(path)  # opening again is a no-op
    df = store.to_dataframe()
    assert sorted(df.subsample.unique()) == [0, 5] and set(df.n) == {5, 10, 20}
    store.delete(pool="p")  # the cascade still reaches the migrated accuracies rows
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM accuracies").fetchone()[0] == 0


def test_result_intervals_are_wilson_of_the_counts(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    key = ResultKey.make("p", "m", {}, "test", "v", subsample=10)
    r = store.put(key, {"a": 0.8}, counts={"a": 10})
    assert r.intervals()["a"] == wilson_interval(8, 10)


def test_evaluator_subsample_is_stored_apart_from_the_full_split(tmp_path):
    pool = FolderPool(tmp_path / "data", per_class=10)
    ev = Evaluator(pool, store=tmp_path / "r.sqlite", device="cpu", cache_dir=tmp_path / "cache")
    est = ev.reference_result("zeroshot", subsample=12)
    assert est.is_subsample and est.counts == {"alpha": 12, "beta": 12}
    full = ev.reference_result("zeroshot")
    assert not full.is_subsample and full.counts == {"alpha": 30, "beta": 30}
    assert ev.evaluations == 2
    assert ev.zeroshot(subsample=12) == est.accuracies and ev.evaluations == 2  # stored
    # a subsample as large as the largest split is the full split (no estimate stage)
    assert ev.zeroshot(subsample=30) == full.accuracies and ev.evaluations == 2
    assert ev.cached_result("zeroshot", {}, subsample=100).key == full.key
    merged = ev.merged_result("task_arithmetic", alpha=0.3, subsample=12)
    assert merged.is_subsample and set(merged.counts.values()) == {12}
    ev2 = Evaluator(pool, store=tmp_path / "r.sqlite", device="cpu", subsample=12)
    assert ev2.zeroshot() == est.accuracies and ev2.evaluations == 0


def test_memory_only_evaluator_keeps_counts(tmp_path):
    pool = FolderPool(tmp_path / "data", per_class=4)
    ev = Evaluator(pool, store=False, device="cpu", cache_dir=tmp_path / "cache")
    r = ev.reference_result("finetuned", subsample=6)
    assert r.counts == {"alpha": 6, "beta": 6} and r.is_subsample
    assert ev.cached_result("finetuned", {}) is None  # the full split was never evaluated
