"""Sweeps return consistent long tables, and their numbers agree with direct evaluation."""
from __future__ import annotations

import json

import pytest

from spectral.engine import Engine
from spectral.eval import sweeps
from spectral.eval.evaluate import Evaluator
from spectral.taskset import TaskSet


@pytest.fixture(scope="module")
def ev(micro_pool, tmp_path_factory):
    d = tmp_path_factory.mktemp("sweeps")
    engine = Engine(TaskSet.from_pool(micro_pool), cache_dir=d / "cache", device="cpu")
    return Evaluator(micro_pool, engine=engine, store=d / "results.sqlite", device="cpu", version="test")


def test_rank_sweep(ev, micro_pool):
    fractions = (0.01, 0.1, 0.5, 1.0)
    df = sweeps.rank_sweep(ev, fractions)
    assert list(df.columns) == ["k_frac", "full_rank", *sweeps.COLUMNS_COMMON]
    assert len(df) == len(fractions) * micro_pool.num_tasks
    assert sorted(set(df.k_frac)) == list(fractions)
    assert df.groupby("k_frac").task.apply(lambda s: sorted(s)).map(tuple).nunique() == 1
    full = df[df.full_rank]
    assert (full.accuracy == full.finetuned).all()  # full-rank TSV-C is the fine-tuned model
    assert ((df.normalized - df.accuracy / df.finetuned).abs() < 1e-12).all()
    n = ev.evaluations
    sweeps.rank_sweep(ev, fractions)
    assert ev.evaluations == n  # all cached


def test_alpha_sweep_and_summary(ev, micro_pool):
    alphas = (0.2, 0.5, 1.0)
    df = sweeps.alpha_sweep(ev, "task_arithmetic", alphas)
    assert list(df.columns) == ["method", "alpha", "params", *sweeps.COLUMNS_COMMON]
    assert len(df) == len(alphas) * micro_pool.num_tasks and sorted(set(df.alpha)) == list(alphas)
    direct = ev.merged("task_arithmetic", alpha=0.5)
    assert dict(zip(df[df.alpha == 0.5].task, df[df.alpha == 0.5].accuracy)) == direct
    summary = sweeps.summarize_table(df, ["method", "alpha"])
    assert len(summary) == 3 and (summary.tasks == micro_pool.num_tasks).all()
    assert summary.accuracy.iloc[1] == pytest.approx(sum(direct.values()) / len(direct))
    wa = sweeps.alpha_sweep(ev, "weight_average", alphas)  # no alpha: one setting
    assert len(wa) == micro_pool.num_tasks
    tsv = sweeps.alpha_sweep(ev, "tsv_m", (1.0,), params={"k_frac": 0.5})
    assert json.loads(tsv.params.iloc[0])["k_frac"] == 0.5


def test_common_frac_sweep(ev, micro_pool):
    df = sweeps.common_frac_sweep(ev, (0.5, 1.0))
    assert list(df.columns) == ["common_frac", "alpha", *sweeps.COLUMNS_COMMON]
    assert len(df) == 2 * micro_pool.num_tasks
    iso_c = ev.merged("iso_c", alpha=df.alpha.iloc[0])
    # common_frac = 1 is Iso-C (Iso Alg. 2 with the whole rank common)
    at_one = df[df.common_frac == 1.0]
    assert dict(zip(at_one.task, at_one.accuracy)) == pytest.approx(iso_c, abs=1 / 128 + 1e-9)
    tuned = sweeps.common_frac_sweep(ev, (0.8,), alphas=(0.5, 1.0))
    assert tuned.alpha.iloc[0] in (0.5, 1.0)


def test_tsv_ablation(ev, micro_pool):
    df = sweeps.tsv_ablation(ev, alphas=(0.3, 1.0))
    assert len(df) == 4 * micro_pool.num_tasks
    table = sweeps.summarize_table(df, ["variant", "low_rank", "interference_reduction", "method", "alpha"])
    assert list(table.variant) == [v[0] for v in sweeps.ABLATION_VARIANTS]
    assert list(zip(table.low_rank, table.interference_reduction)) == [(False, False), (True, False),
                                                                       (False, True), (True, True)]
    assert set(table.alpha) <= {0.3, 1.0}
    # the alpha was chosen on val: it is the best of the grid there
    params_of = {v[0]: dict(v[4]) for v in sweeps.ABLATION_VARIANTS}
    for _, row in table.iterrows():
        method, params = row.method, params_of[row.variant]
        vals = {a: ev.merged(method, alpha=a, split="val", **params) for a in (0.3, 1.0)}
        best = max(vals, key=lambda a: (sum(vals[a].values()), -a))
        assert row.alpha == best


def test_method_table(ev, micro_pool):
    df = sweeps.method_table(ev, ["task_arithmetic", "tsv_m", "iso_c", "weight_average"], alphas=(0.3, 1.0))
    methods = list(dict.fromkeys(df.method))
    assert methods == ["zeroshot", "finetuned", "task_arithmetic", "tsv_m", "iso_c", "weight_average"]
    assert len(df) == len(methods) * micro_pool.num_tasks
    ft_rows = df[df.method == "finetuned"]
    assert (ft_rows.normalized == 1.0).all()
