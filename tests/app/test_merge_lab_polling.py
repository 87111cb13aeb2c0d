"""The Merge lab polls the server only while a background refinement runs (issue 29): an idle session registers
no fragment with ``run_every`` (a browser would rerun it once a second, forever), a running refinement does, and
the run that swaps its exact numbers in drops it again."""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

import fake_pool
import pytest
from app_helpers import APP
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import local_script_runner

from spectral.app_state import _WORKSPACES, register_pool
from spectral.figures import registry

LARGE = "fake-large-poll"


@pytest.fixture
def auto_reruns(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """After every AppTest run, the intervals of the ``auto_rerun`` messages (one per fragment with ``run_every``
    that the run registered): what makes a browser rerun a fragment on a timer."""
    runs: list[list[float]] = []
    parse = local_script_runner.parse_tree_from_messages

    def recording(messages: list[Any]) -> Any:
        runs.append([m.auto_rerun.interval for m in messages if m.HasField("auto_rerun")])
        return parse(messages)

    monkeypatch.setattr(local_script_runner, "parse_tree_from_messages", recording)
    return runs


def _open_lab() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_idle_merge_lab_registers_no_timer(auto_reruns: list[list[float]]) -> None:
    at = _open_lab()
    assert at.get("plotly_chart"), "the radar is drawn"
    assert auto_reruns and auto_reruns[-1] == [], "an idle Merge lab must not rerun anything on a timer"
    # a slider move reruns the lab fragment only, and still starts no timer
    at.slider(key="ml_tsv_m_alpha").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert auto_reruns[-1] == []


def test_refinement_polls_only_while_its_job_runs(auto_reruns: list[list[float]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    gates = [threading.Event()]  # the whole-split evaluation waits on the last: it runs when the page is checked
    radar = registry.FIGURES["radar"]

    def gated(ws: Any, settings: dict[str, Any], progress: Any) -> Any:
        if not settings.get("subsample"):
            assert gates[-1].wait(300)
        return radar.compute(ws, settings, progress)

    monkeypatch.setitem(registry.FIGURES, "radar", dataclasses.replace(radar, compute=gated))
    register_pool(LARGE, lambda: fake_pool.FakePool(name=LARGE, samples=600, seed=5))
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", LARGE)
    monkeypatch.setenv("SPECTRAL_LIVE_SUBSAMPLE", "64")
    at = _open_lab()
    ws = next(w for w in _WORKSPACES.values() if w.spec == LARGE)
    assert ws.jobs.running(), "the whole split is being evaluated in the background"
    assert auto_reruns[-1] == [1.0], "while it runs, the page looks at it once a second"
    assert "Estimate" in " ".join(str(c.value) for c in at.caption)
    _finish(gates, ws)
    at.run()  # what the poller's app rerun does once the job is done
    assert not at.exception, [e.value for e in at.exception]
    assert auto_reruns[-1] == [], "no timer once the exact numbers are on screen"
    assert "Exact" in " ".join(str(c.value) for c in at.caption)

    # a slider move starts a new estimate from inside the lab fragment: one app rerun registers the poller
    gates.append(threading.Event())
    at.slider(key="ml_tsv_m_alpha").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert ws.jobs.running() and auto_reruns[-1] == [1.0]
    _finish(gates, ws)
    at.run()
    assert auto_reruns[-1] == [] and "Exact" in " ".join(str(c.value) for c in at.caption)


def _finish(gates: list[threading.Event], ws: Any) -> None:
    gates[-1].set()
    for job in ws.jobs.running():
        assert job.wait(300), f"job {job.label} did not finish"
