"""Evaluation of state dicts on a pool, through the results store."""
from __future__ import annotations

import math

import pytest
import torch

from spectral.engine import Engine
from spectral.eval.evaluate import Evaluator, summarize, task_accuracies
from spectral.eval.results import ResultsStore
from spectral.taskset import TaskSet


@pytest.fixture
def evaluator(micro_pool, tmp_path):
    engine = Engine(TaskSet.from_pool(micro_pool), cache_dir=tmp_path / "cache", device="cpu")
    return Evaluator(micro_pool, engine=engine, store=tmp_path / "results.sqlite", device="cpu", version="test")


def test_task_accuracies_match_the_build(micro_pool):
    accs, counts = task_accuracies(micro_pool, micro_pool.base_state_dict(), device="cpu")
    assert accs == pytest.approx(micro_pool.recorded_accuracy("zeroshot"), abs=1e-9)
    assert counts == {t: 128 for t in micro_pool.task_names}
    for t in micro_pool.task_names:
        a, _ = task_accuracies(micro_pool, micro_pool.finetuned_state_dict(t), tasks=[t], device="cpu")
        assert a[t] == pytest.approx(micro_pool.recorded_accuracy("finetuned")[t], abs=1e-9)
    val, _ = task_accuracies(micro_pool, micro_pool.base_state_dict(), split="val", device="cpu")
    assert val == pytest.approx(micro_pool.recorded_accuracy("zeroshot", "val"), abs=1e-9)


def test_evaluator_caches_and_invalidates(evaluator, micro_pool, tmp_path):
    zs, ft = evaluator.zeroshot(), evaluator.finetuned()
    assert evaluator.evaluations == 2
    ta = evaluator.merged("task_arithmetic", alpha=0.3)
    assert evaluator.evaluations == 3
    assert evaluator.merged("task_arithmetic", alpha=0.3) == ta  # cached
    assert evaluator.merged("task_arithmetic", alpha=0.30000000001) == ta  # same canonical key
    assert evaluator.evaluations == 3
    evaluator.merged("task_arithmetic", alpha=0.4)  # new params → miss
    assert evaluator.evaluations == 4
    # defaults are resolved before keying: tsv_m with k_frac = 1/T explicitly is the same result
    evaluator.merged("tsv_m", alpha=1.0)
    evaluator.merged("tsv_m", alpha=1.0, k_frac=1 / micro_pool.num_tasks)
    assert evaluator.evaluations == 5
    # a new process (new Evaluator, same database) evaluates nothing
    again = Evaluator(micro_pool, engine=evaluator.engine, store=tmp_path / "results.sqlite", device="cpu",
                      version="test")
    assert again.zeroshot() == zs and again.finetuned() == ft and again.merged("task_arithmetic", alpha=0.3) == ta
    assert again.evaluations == 0
    # another code version misses
    newer = Evaluator(micro_pool, engine=evaluator.engine, store=tmp_path / "results.sqlite", device="cpu",
                      version="test2")
    newer.zeroshot()
    assert newer.evaluations == 1
    # another pool (a subset of tasks has other content) misses
    from spectral.zoo import ZooPool

    sub = ZooPool(micro_pool.root, micro_pool.task_names[:2])
    other = Evaluator(sub, store=tmp_path / "results.sqlite", device="cpu", version="test")
    other.zeroshot()
    assert other.evaluations == 1
    df = ResultsStore(tmp_path / "results.sqlite").to_dataframe()
    assert set(df.method) >= {"zeroshot", "finetuned", "task_arithmetic", "tsv_m"}


def test_memory_only_store(micro_pool):
    ev = Evaluator(micro_pool, store=False, device="cpu", version="x")
    ev.zeroshot()
    ev.zeroshot()
    assert ev.evaluations == 1


def test_summary_and_interference(evaluator):
    zs, ft = evaluator.zeroshot(), evaluator.finetuned()
    s = evaluator.summary(ft)
    assert s.normalized == pytest.approx(1.0) and s.nai == pytest.approx(1.0)
    s0 = evaluator.summary(zs)
    assert s0.nai == pytest.approx(0.0, abs=1e-9)
    assert s0.absolute == pytest.approx(sum(zs.values()) / len(zs))
    ta = evaluator.merged("task_arithmetic", alpha=0.3)
    s_ta = evaluator.summary(ta)
    assert 0 < s_ta.absolute <= 1 and not math.isnan(s_ta.normalized)
    manual = summarize(ta, ft, zs)
    assert manual.as_row() == s_ta.as_row()


def test_compressed_full_rank_equals_finetuned(evaluator, micro_pool):
    ft = evaluator.finetuned()
    for t in micro_pool.task_names:
        assert evaluator.compressed(t, 1.0) == ft[t]


def test_generic_state_dict_cache(evaluator, micro_pool):
    sd = micro_pool.base_state_dict()
    produced = []

    def make():
        produced.append(1)
        return sd

    a = evaluator.state_dict("custom", {"note": "base"}, make)
    b = evaluator.state_dict("custom", {"note": "base"}, make)
    assert a == b == evaluator.zeroshot() and len(produced) == 1
    bad = {k: torch.zeros_like(v) for k, v in sd.items()}
    with pytest.raises(Exception):
        evaluator.state_dict("broken", {}, {k: v for k, v in list(bad.items())[:-1]})  # missing key → strict load fails


@pytest.mark.parametrize("keep_merges", [False, True])
def test_release_engine_memory_evaluates_a_merge_with_the_memory_to_itself(micro_pool, tmp_path, monkeypatch,
                                                                              keep_merges):
    ev = Evaluator(micro_pool, store=False, device="cpu", version="x", cache_dir=tmp_path / "cache",
                   release_engine_memory=True, keep_merges=keep_merges)
    held_during_evaluation = []
    real = Evaluator.accuracies

    def spy(self, state_dict, *args, **kwargs):
        held_during_evaluation.append(self.engine.memory_used())
        return real(self, state_dict, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "accuracies", spy)
    released = ev.merged("iso_cts", common_frac=0.5)
    assert ev.engine.cache.memory_bytes == 0  # the engine built here keeps no factors in memory
    (held,) = held_during_evaluation
    assert held["factors"] == 0 and held["derived"] == 0
    assert (held["merges"] > 0) == keep_merges
    plain = Evaluator(micro_pool, store=False, device="cpu", version="x", cache_dir=tmp_path / "cache")
    assert plain.merged("iso_cts", common_frac=0.5) == released
    assert held_during_evaluation[-1]["derived"] > 0  # without the option the engine keeps what it derived


def test_the_eval_command_frees_the_merge_before_evaluating(tmp_path):
    import argparse

    from spectral.eval.commands import open_evaluator

    args = argparse.Namespace(pool="zoo-micro", cache_dir=str(tmp_path / "cache"), store=str(tmp_path / "r.sqlite"),
                              split="test", device="cpu", trust_pickle=False)
    ev = open_evaluator(args, keep_merges=False)
    assert ev.release_engine_memory and not ev.keep_merges
    assert open_evaluator(args).keep_merges  # sweeps keep the merge for the next alpha
