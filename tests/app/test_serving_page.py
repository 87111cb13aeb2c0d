"""The dashboard served to a group (issue 26): the trust control and the sidebar notice beyond loopback, the pool
roots refusing a path outside, and two sessions asking for the same evaluation at once running it once."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
from app_helpers import APP
from streamlit import config
from streamlit.testing.v1 import AppTest

from pages import _ui
from spectral import serving
from spectral.app_state import _WORKSPACES

TIMEOUT = 120
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture(autouse=True)
def _no_legacy_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ui, "leave_legacy_navigation", lambda: None, raising=False)


@pytest.fixture
def listening_on() -> Iterator[object]:
    """Set ``server.address`` (as ``--server.address`` would) for the test, and restore it."""
    before = config.get_option("server.address")

    def set_address(address: str) -> None:
        config.set_option("server.address", address)

    yield set_address
    config.set_option("server.address", before)


def _trust(at: AppTest):  # noqa: ANN202
    return at.sidebar.checkbox(key="trust_pickle")


def _notice(at: AppTest) -> bool:
    return any("Served beyond this machine" in w.value for w in at.sidebar.warning)


def test_pickle_control_is_disabled_when_served_beyond_loopback(monkeypatch, listening_on) -> None:
    monkeypatch.delenv("SPECTRAL_ALLOW_PICKLE", raising=False)
    listening_on("0.0.0.0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    control = _trust(at)
    assert control.disabled and control.value is False
    assert any(serving.ALLOW_PICKLE_ENV in c.value for c in at.sidebar.caption)  # says how to allow it
    assert _notice(at) and any("0.0.0.0" in w.value for w in at.sidebar.warning)
    # a value forced into the session (as a crafted request would) does not turn it on
    at.session_state["trust_pickle"] = True
    at.run()
    assert _trust(at).value is False and _trust(at).disabled


def test_pickle_control_works_on_loopback_and_when_allowed(monkeypatch, listening_on) -> None:
    listening_on("127.0.0.1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not _trust(at).disabled and not _notice(at)
    monkeypatch.setenv("SPECTRAL_ALLOW_PICKLE", "1")
    listening_on("0.0.0.0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not _trust(at).disabled and _notice(at)
    _trust(at).check().run()
    assert _trust(at).value is True


def test_a_pool_outside_the_roots_is_refused(monkeypatch, tmp_path: Path) -> None:
    inside, outside = tmp_path / "lab", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    (outside / "zeroshot.pt").write_bytes(SECRET)
    (inside / "link").symlink_to(outside)
    monkeypatch.setenv("SPECTRAL_POOL_ROOTS", str(inside))
    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path / "cache"))
    for spec in (outside, inside / "link", inside / ".." / "private"):
        monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", str(spec))
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and "SPECTRAL_POOL_ROOTS" in errors[0], errors
        shown = errors[0] + " ".join(str(c.value) for c in at.caption)
        assert "root:x" not in shown and SECRET[:4].hex(" ") not in shown


def test_two_sessions_asking_for_the_same_evaluation_run_it_once(monkeypatch) -> None:
    """Two browser sessions open the merge lab at the same moment: the second finds the first's evaluation
    running, waits for it, and both pages show its result; the results store holds one row per merge."""
    from spectral.eval.evaluate import Evaluator

    import streamlit as st

    from spectral import app_state

    # a fresh shared workspace: earlier page tests of this process may have memoised this merge's radar
    st.cache_resource.clear()
    with app_state._WS_LOCK:
        app_state._WORKSPACES.clear()
    serving.reset_job_queue(1)
    calls: list[str] = []
    first_started, release = threading.Event(), threading.Event()
    original = Evaluator.merged_result

    def counted(self, method, **kwargs):  # noqa: ANN001, ANN202
        calls.append(method)
        first_started.set()
        release.wait(TIMEOUT)  # holds the first evaluation until the second session waits for it
        return original(self, method, **kwargs)

    monkeypatch.setattr(Evaluator, "merged_result", counted)
    waited: list[object] = []  # the jobs the pages waited on (AppTest gives every session the same id)
    wait_for = _ui.wait_for

    def recording_wait_for(job, label):  # noqa: ANN001, ANN202
        waited.append(job)
        return wait_for(job, label)

    monkeypatch.setattr(_ui, "wait_for", recording_wait_for)
    query = {"ml_methods": "tsv_m"}
    apps = [AppTest.from_file(APP, default_timeout=TIMEOUT) for _ in range(2)]
    for at in apps:
        at.run()  # the overview (opens the shared workspace)
        for key, value in query.items():
            at.query_params[key] = value
    errors: list[BaseException] = []

    def visit(at: AppTest) -> None:
        try:
            at.switch_page("pages/merge_lab.py").run()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    first = threading.Thread(target=visit, args=(apps[0],))
    second = threading.Thread(target=visit, args=(apps[1],))
    try:
        first.start()
        assert first_started.wait(TIMEOUT)
        second.start()

        def radar_waits() -> list[object]:
            return [j for j in waited if "radar" in str(getattr(j, "key", ""))]

        for _ in range(1200):  # until the second session waits on the running job too
            if len(radar_waits()) >= 2:
                break
            threading.Event().wait(0.05)
        jobs = radar_waits()
        assert len(jobs) == 2 and jobs[0] is jobs[1] and not jobs[0].done  # one job, two sessions waiting
    finally:
        release.set()
        first.join(TIMEOUT), second.join(TIMEOUT)
        serving.reset_job_queue()
    assert not errors, errors

    assert calls.count("tsv_m") == 1, calls  # one evaluation for both sessions
    tables = []
    for at in apps:
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        tables.append(at.dataframe[0].value)
    assert tables[0].equals(tables[1]) and "TSV-M" in tables[0].to_string()
    ws = next(w for w in _WORKSPACES.values() if w.evaluator is not None and w.spec == "fake-4")
    rows = ws.evaluator.store.to_dataframe(method="tsv_m")
    assert rows["run"].nunique() == 1  # one stored run (its rows are that run's per-task accuracies)
    assert len(rows) == rows["task"].nunique() == len(ws.task_names)
