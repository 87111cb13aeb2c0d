"""Every page on the language demo zoo (its micro size, built once here: the same builder, files and pool class as
``lm-zoo-7``): no exception or error, the views fed by the GPT-2 pool's layers, CoLA's radar spoke marked MCC and
AdaRank's published GLUE rows beside the user's."""
from __future__ import annotations

import pytest
from app_helpers import APP, chart_data, chart_keys
from streamlit.testing.v1 import AppTest

from spectral.app_state import register_pool

TIMEOUT = 300
NAME = "lm-zoo-micro-test"
PAGES = ["pages/home.py", "pages/task_vectors.py", "pages/spectra.py", "pages/interference.py", "pages/alignment.py",
         "pages/merge_lab.py", "pages/sweeps.py", "pages/adaptation.py", "pages/export.py"]


@pytest.fixture(scope="module")
def lm_zoo(tmp_path_factory):
    from spectral.zoo.pool import open_lm_zoo_pool

    cache = tmp_path_factory.mktemp("lmzoo")
    pool = open_lm_zoo_pool("lm-zoo-micro", cache_dir=cache)
    register_pool(NAME, lambda: pool)
    return pool


@pytest.fixture
def on_lm_zoo(lm_zoo, monkeypatch):
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", NAME)
    return lm_zoo


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.slow
def test_every_page_opens_on_the_language_zoo(on_lm_zoo) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.selectbox(key="pool").value == NAME
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])


@pytest.mark.slow
def test_spectra_show_the_gpt2_tasks(on_lm_zoo) -> None:
    at = _open("pages/spectra.py")
    names = {t["name"] for t in chart_data(at, "spectra")}
    assert {"cola", "mnli", "Task Arithmetic", "TSV-M"} <= names


@pytest.mark.slow
def test_merge_lab_marks_mcc_and_shows_published_glue_rows(on_lm_zoo) -> None:
    at = _open("pages/merge_lab.py")
    assert "radar" in chart_keys(at)
    spokes = {theta for trace in chart_data(at, "radar") for theta in trace.get("theta", []) if theta}
    assert "cola (MCC)" in spokes and "mnli" in spokes
    assert any(h.value == "Published" for h in at.subheader)
    published = [d.value for d in at.dataframe if "paper" in d.value.columns]
    assert published and published[0]["paper"].str.contains("AdaRank").all()
