"""The merge lab on a pool with large test splits: a subsample estimate with 95% Wilson intervals first, the
whole split evaluated in a background job, then exact numbers in place of the estimate."""
from __future__ import annotations

import time

import fake_pool
import pytest
from app_helpers import APP, chart_data
from streamlit.testing.v1 import AppTest

from spectral.app_state import _WORKSPACES, register_pool

LARGE = "fake-large"
SAMPLES = 600  # images per task split, against a live subsample of 64


@pytest.fixture(autouse=True)
def _large_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    register_pool(LARGE, lambda: fake_pool.FakePool(name=LARGE, samples=SAMPLES, seed=3))
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", LARGE)
    monkeypatch.setenv("SPECTRAL_LIVE_SUBSAMPLE", "64")


def _wait_for_jobs() -> None:
    for ws in list(_WORKSPACES.values()):
        for job in ws.jobs.running():
            assert job.wait(300), f"job {job.label} did not finish"


def _texts(at: AppTest) -> str:
    return " ".join(str(c.value) for c in at.caption) + " " + " ".join(str(m.value) for m in at.markdown)


def test_estimate_with_intervals_then_exact_numbers() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]

    # 1. the estimate: error bars on the radar, ± in both tables
    traces = {t["name"]: t for t in chart_data(at, "radar")}
    bars = [n for n in traces if n.endswith("95% CI")]
    assert {"Zero-shot 95% CI", "Fine-tuned 95% CI", "TSV-M 95% CI"} <= set(bars)
    tsv = traces["TSV-M"]["r"][:4]
    bar = [r for r in traces["TSV-M 95% CI"]["r"] if r is not None]
    for i, acc in enumerate(tsv):  # every estimate lies inside its own interval
        assert bar[2 * i] <= acc <= bar[2 * i + 1] and bar[2 * i] < bar[2 * i + 1]
    assert "Estimate" in _texts(at) and "64 test images per task" in _texts(at)
    mean, per_task = at.dataframe[0].value, at.dataframe[1].value
    assert all("±" in str(v) for v in mean["accuracy"])
    assert all("±" in str(v) for v in per_task["TSV-M"])

    # 2. the background refinement replaces it with exact numbers on the next run
    _wait_for_jobs()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    traces = {t["name"]: t for t in chart_data(at, "radar")}
    assert not [n for n in traces if n.endswith("95% CI")]
    assert "Estimate" not in _texts(at) and "Exact" in _texts(at)
    mean, per_task = at.dataframe[0].value, at.dataframe[1].value
    assert not any("±" in str(v) for v in mean["accuracy"]) and not any("±" in str(v) for v in per_task["TSV-M"])
    assert traces["Fine-tuned"]["r"][:4] == [100.0] * 4  # the fake pool's labels are each fine-tuned model's own

    # 3. the exact numbers are what the whole split gives (not the estimate), stored as such
    ws = next(w for w in _WORKSPACES.values() if w.spec == LARGE)
    exact = ws.accuracy_result("zeroshot")
    estimate = ws.accuracy_result("zeroshot", subsample=64)
    assert set(exact.counts.values()) == {SAMPLES} and not exact.is_subsample
    assert set(estimate.counts.values()) == {64} and estimate.is_subsample
    shown = traces["Zero-shot"]["r"][:4]
    assert shown == pytest.approx([100.0 * exact.accuracies[t] for t in ws.task_names])


def test_small_splits_get_an_estimate_while_other_sessions_keep_the_server_busy(monkeypatch) -> None:
    """Splits no larger than the live subsample are evaluated exactly at once, unless other sessions' merges
    keep the queue busy: then a quicker estimate comes first, and the exact numbers follow when it is free."""
    from spectral import serving

    monkeypatch.setenv("SPECTRAL_LIVE_SUBSAMPLE", str(SAMPLES))  # no estimate stage on an idle server
    monkeypatch.setenv("SPECTRAL_BUSY_SUBSAMPLE", "50")
    queue = serving.reset_job_queue(1)
    try:
        with _WORKSPACES_CLEARED():
            at = AppTest.from_file(APP, default_timeout=120).run()
            at.switch_page("pages/merge_lab.py").run()
            assert "Estimate" not in _texts(at)  # idle: exact at once

            queue._entered.append((time.monotonic(), ("another-session",)))  # it moved a slider just now
            at.slider(key="ml_tsv_m_alpha").set_value(0.55).run()  # a merge not yet evaluated
            assert not at.exception, [e.value for e in at.exception]
            texts = _texts(at)
            assert "Estimate" in texts and "50 test images per task" in texts
            assert "other sessions' merges are queued" in texts
            assert [n for n in (t["name"] for t in chart_data(at, "radar")) if n.endswith("95% CI")]

            queue._entered.clear()  # the others stopped: the refinement runs, exact numbers replace the estimate
            _wait_for_jobs()
            at.run()
            assert "Estimate" not in _texts(at) and "Exact" in _texts(at)
    finally:
        serving.reset_job_queue()


class _WORKSPACES_CLEARED:
    """A fresh shared workspace (earlier tests of this process may have memoised these merges)."""

    def __enter__(self) -> None:
        import streamlit as st

        st.cache_resource.clear()
        _WORKSPACES.clear()

    def __exit__(self, *exc: object) -> None:
        _WORKSPACES.clear()
