"""AppTest of the adaptation page on the tiny fake pool: start a short run in the background, wait for it, see the
mask / kept-rank / λ / trace / accuracy views; stop and resume; a widget change rebuilds a figure."""
from __future__ import annotations

import functools
import json
import threading
import time
from contextlib import contextmanager

import pytest
from app_helpers import APP, decode
from streamlit.testing.v1 import AppTest

from spectral.adapt.session import shared_registry

TIMEOUT = 180
PAGE = "pages/adaptation.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _no_legacy_rerun(monkeypatch):
    """AppTest resets Streamlit's legacy-pages flag on every run, so ``_ui.leave_legacy_navigation`` reruns every
    other script run and the one-shot button clicks of that run are lost (a real server sets the flag once).
    The page's buttons are what this test drives: skip that rerun here."""
    from pages import _ui

    monkeypatch.setattr(_ui, "leave_legacy_navigation", lambda: None, raising=False)


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _charts(at: AppTest) -> dict[str, list]:
    return {str(c.proto.id).rsplit("-chart_", 1)[-1]: decode(json.loads(c.proto.spec)["data"])
            for c in at.get("plotly_chart")}


def _run_id(at: AppTest) -> str:
    caption = next(c.value for c in at.caption if "run `" in c.value)
    return caption.split("run `", 1)[1].split("`", 1)[0]


def _wait(run_id: str) -> None:
    handle = shared_registry().get(run_id)
    assert handle is not None
    handle.join(TIMEOUT)
    assert not handle.running


def test_page_starts_a_run_and_shows_the_views(tmp_path) -> None:
    at = _page()
    assert at.title[0].value == "Test-time adaptation"
    assert {"ad_method", "ad_base", "ad_lambda_adarank", "ad_selection"} <= {r.key for r in at.radio}
    at.number_input(key="ad_steps").set_value(4).run()
    at.number_input(key="ad_select_every").set_value(2).run()
    at.button(key="ad_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = _run_id(at)
    _wait(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    charts = _charts(at)
    assert {"ad_masks", "ad_rank", "ad_rank_lines", "ad_lambda", "ad_entropy", "ad_radar"} <= set(charts)
    heat = [t for t in charts["ad_masks"] if t["type"] == "heatmap"]
    assert heat and len(heat[0]["y"]) == 4 and set(v for row in heat[0]["z"] for v in row) <= {0, 1}
    radar_models = {t["name"] for t in charts["ad_radar"]}
    assert {"TA+AdaRank", "Task Arithmetic", "Zero-shot", "Fine-tuned"} <= radar_models
    assert shared_registry().get(run_id).result.step == 4

    # a view setting changes the figure
    before = charts["ad_rank"][0]["z"]
    at.radio(key="ad_rank_value").set_value("kept").run()
    after = _charts(at)["ad_rank"][0]["z"]
    assert before != after and max(max(row) for row in after) > 1

    # more steps: the same run resumes from its checkpoint
    at.number_input(key="ad_steps").set_value(6).run()
    assert _run_id(at) == run_id
    assert at.button(key="ad_start").label == "Resume"
    at.button(key="ad_start").click().run()
    _wait(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert shared_registry().get(run_id).result.step == 6


def test_adamerging_has_no_masks_and_cart_settings() -> None:
    at = _page()
    at.radio(key="ad_method").set_value("adamerging").run()
    assert at.radio(key="ad_lambda_adamerging").options == ["per task & layer", "per task"]
    at.radio(key="ad_base").set_value("cart").run()
    assert not at.slider(key="ad_k_frac").disabled
    at.number_input(key="ad_steps").set_value(2).run()
    at.button(key="ad_start").click().run()
    run_id = _run_id(at)
    _wait(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("AdaMerging learns no masks" in i.value for i in at.info)
    assert "ad_lambda" in _charts(at)
    assert shared_registry().get(run_id).result.masks == {}


def test_merge_lab_radar_shows_stored_adaptation_results() -> None:
    at = _page()
    at.radio(key="ad_lambda_adarank").set_value("task").run()  # a method no other test of the shared store runs
    at.number_input(key="ad_steps").set_value(3).run()
    at.button(key="ad_start").click().run()
    run_id = _run_id(at)
    _wait(run_id)
    at.run()  # the accuracy tab evaluates the selected model into the results store
    assert not at.exception, [e.value for e in at.exception]
    label = "TA+AdaRank (task-wise λ)"
    stored = {t["name"]: t["r"] for t in _charts(at)["ad_radar"]}

    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    choice = at.multiselect(key="ml_adapted")
    ref = f"{run_id}@3"
    assert ref in choice.value  # the newest result of each method is drawn by default
    assert any(o.startswith(f"{label} · step 3 of 3 (last step) · mean ") for o in choice.options)
    traces = {t["name"]: t for t in _charts(at)["radar"]}
    assert {"Task Arithmetic", "TSV-M", "Iso-CTS", label, "Zero-shot", "Fine-tuned"} <= set(traces)
    assert traces[label]["r"] == stored[label]  # the adaptation page's radar and the lab's agree
    assert traces[label]["line"]["dash"] == "dashdot"
    summary = at.dataframe[0].value
    assert label in list(summary["model"])

    choice.set_value([]).run()
    assert not at.exception
    assert label not in {t["name"] for t in _charts(at)["radar"]}
    # a result stored later is offered without a restart; the choice already made stands
    at.switch_page(PAGE).run()
    at.number_input(key="ad_steps").set_value(4).run()
    at.button(key="ad_start").click().run()
    _wait(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    choice = at.multiselect(key="ml_adapted")
    assert choice.value == []  # the user's (empty) choice is kept
    assert sum(o.startswith(label) for o in choice.options) == 2  # step 3 and step 4 of the same run
    choice.set_value([f"{run_id}@4"]).run()
    assert not at.exception
    assert f"{label} · {run_id[:6]}, step 4" in {t["name"] for t in _charts(at)["radar"]}


def test_stop_button_halts_the_run_and_it_resumes_from_its_checkpoint() -> None:
    at = _page()
    at.radio(key="ad_method").set_value("adamerging").run()
    at.radio(key="ad_lambda_adamerging").set_value("task").run()
    at.number_input(key="ad_steps").set_value(5000).run()  # far more than this test lets it do
    at.button(key="ad_start").click().run()
    run_id = _run_id(at)
    handle = shared_registry().get(run_id)
    assert handle is not None and handle.running
    deadline = time.monotonic() + TIMEOUT
    while handle.adaptation.step < 3 and time.monotonic() < deadline:  # let it take a few steps
        time.sleep(0.05)
    at.button(key="ad_stop").click().run()
    _wait(run_id)
    stopped_at = handle.adaptation.step
    assert 0 < stopped_at < 5000 and handle.adaptation.state == "stopped"
    assert handle.adaptation.checkpoint_step() == stopped_at  # logits/λ and traces are on disk
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="ad_start").label == "Resume"
    at.number_input(key="ad_steps").set_value(stopped_at + 3).run()
    at.button(key="ad_start").click().run()
    _wait(run_id)
    assert handle.adaptation.step == stopped_at + 3


@contextmanager
def _fragment_reruns(at: AppTest):
    """Make ``at.run()`` rerun only the page's fragments, as the browser's ``run_every`` timer does.

    AppTest has no public way to rerun a fragment: every ``run()`` builds a ``RerunData`` with no fragment ids
    (a full run). Here the script runner's ``RerunData`` gets the ids of the fragments registered so far."""
    from streamlit.testing.v1 import local_script_runner

    ids = list(at._fragment_storage._fragments)  # noqa: SLF001 - no public accessor
    assert ids, "the page registered no fragment"
    real = local_script_runner.RerunData
    local_script_runner.RerunData = functools.partial(real, fragment_id_queue=ids, is_fragment_scoped_rerun=True)
    try:
        yield
    finally:
        local_script_runner.RerunData = real


def test_page_refreshes_when_the_run_ends(monkeypatch) -> None:
    """The run's thread outlives its last state change: after the final step it evaluates and stores the result
    (``on_done``). The status poll that finds the thread gone must still redraw the whole page (Stop disabled,
    results shown) instead of staying stale until the user leaves and comes back."""
    import spectral.adapt.session as session

    entered, gate = threading.Event(), threading.Event()
    real_store = session.evaluate_and_store

    def slow_store(ws, result):
        entered.set()
        assert gate.wait(TIMEOUT)
        return real_store(ws, result)

    monkeypatch.setattr(session, "evaluate_and_store", slow_store)
    at = _page()
    at.radio(key="ad_method").set_value("adamerging").run()
    at.number_input(key="ad_seed").set_value(4242).run()  # a run no other test starts
    at.number_input(key="ad_steps").set_value(2).run()
    at.button(key="ad_start").click().run()
    run_id = _run_id(at)
    handle = shared_registry().get(run_id)
    assert entered.wait(TIMEOUT)  # last step done, state "finished", result being stored
    at.run()  # what the browser shows meanwhile
    assert not at.exception, [e.value for e in at.exception]
    assert handle.running and handle.adaptation.state == "finished"
    assert not at.button(key="ad_stop").disabled and "ad_lambda" not in _charts(at)
    assert any("finished, evaluating" in p.proto.text for p in at.get("progress"))

    gate.set()
    _wait(run_id)
    with _fragment_reruns(at):
        at.run()  # the next status poll
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="ad_stop").disabled  # the whole page was redrawn
    assert "ad_lambda" in _charts(at) and any(s.value.startswith("TA+AdaMerging") for s in at.subheader)
