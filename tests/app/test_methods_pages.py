"""Page tests of issue 12: the Spectra page's over-accumulation view, and published numbers in the merge lab and
the Sweeps page (the fake pool has 4 tasks, for which no paper publishes numbers: a 4-task row is added here)."""
from __future__ import annotations

import pandas as pd
import pytest
from app_helpers import APP, chart_data, chart_keys
from streamlit.testing.v1 import AppTest

from spectral import published

TIMEOUT = 120


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_spectra_page_shows_over_accumulation() -> None:
    at = open_page("pages/spectra.py")
    assert {"svc_coefficients", "svc_spectrum"} <= set(chart_keys(at))
    heat = chart_data(at, "svc_coefficients")[0]
    assert len(heat["y"]) == 4 and heat["zmid"] == 1.0
    before = chart_data(at, "svc_spectrum")
    assert {t["name"] for t in before} >= {"Task Arithmetic (base)", "Task Arithmetic (SVC)", "γ_r"}
    at.slider(key="sp_svc_task_arithmetic_alpha").set_value(2.0).run()
    assert not at.exception
    after = chart_data(at, "svc_spectrum")
    assert after[0]["y"] != before[0]["y"]  # the base merge's spectrum scales with α
    at.selectbox(key="sp_svc_base").set_value("tsv_m").run()
    assert not at.exception and not at.error
    assert "sp_svc_tsv_m_k_frac" in {s.key for s in at.select_slider}


@pytest.fixture
def four_task_rows(monkeypatch):
    table = published.published_results()
    extra = pd.DataFrame([
        {"source": "Test paper Table 9", "model": "ViT-B-32", "tasks": 4, "method": "TSV-M", "abs_acc": 88.8,
         "norm_acc": 95.5},
        {"source": "Test paper Table 9", "model": "ViT-B-32", "tasks": 4, "method": "Task Arithmetic",
         "abs_acc": 77.7, "norm_acc": 85.5},
    ])
    monkeypatch.setattr(published, "published_results", lambda: pd.concat([table, extra], ignore_index=True))


def test_merge_lab_shows_published_numbers_marked_as_published(four_task_rows) -> None:
    at = open_page("pages/merge_lab.py")
    tables = [d.value for d in at.dataframe]
    beside = [t for t in tables if "published (%)" in t.columns]
    assert beside, [list(t.columns) for t in tables]
    row = beside[0].set_index("model").loc["TSV-M"]
    assert row["published (%)"] == 88.8 and row["paper"] == "Test paper Table 9"
    # the mean table shows text ("30.47", or "30.47 ± 1.20" for an estimate), rounded to two decimals
    shown = str(tables[0].set_index("model").loc["TSV-M", "accuracy"]).split(" ±")[0]
    assert row["yours (%)"] == pytest.approx(float(shown), abs=0.005)
    assert any("for reference" in c.value for c in at.caption)


def test_sweeps_page_shows_published_numbers(four_task_rows) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for key, value in {"sw_rank_points": 3, "sw_alpha_points": 3, "sw_common_points": 3,
                       "sw_ablation_select": False}.items():
        at.session_state[key] = value
    at.session_state["sw_alpha_methods"] = ["task_arithmetic"]
    at.session_state["sw_view"] = "alpha"  # the α sweep is the one shown (only the shown sweep is computed)
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception and not at.error
    beside = [d.value for d in at.dataframe if "published (%)" in d.value.columns]
    assert beside and list(beside[0].model) == ["Task Arithmetic"]
    assert list(beside[0]["published (%)"]) == [77.7]
