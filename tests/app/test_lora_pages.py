"""Every page on the LoRA demo zoo (``lora-zoo-micro``: PEFT adapters of mixed ranks and targets on the micro zoo's
tower, trained here): no exception or error, and the spectra show the adapters' few non-zero singular values."""
from __future__ import annotations

import pytest
from app_helpers import APP, chart_data
from streamlit.testing.v1 import AppTest

from spectral.app_state import register_pool

TIMEOUT = 300
NAME = "lora-zoo-micro-test"
PAGES = ["pages/home.py", "pages/task_vectors.py", "pages/spectra.py", "pages/interference.py", "pages/alignment.py",
         "pages/merge_lab.py", "pages/sweeps.py", "pages/adaptation.py", "pages/export.py"]


@pytest.fixture(scope="module")
def lora_zoo(micro_pool, tmp_path_factory):
    from spectral.checkpoints.lora import make_lora_pool
    from spectral.zoo.lora import build_lora_zoo

    root = tmp_path_factory.mktemp("lora-adapters")  # beside the shared micro zoo, not inside it
    build_lora_zoo(micro_pool, root, steps=10)
    pool = make_lora_pool(micro_pool, {t: root / t for t in micro_pool.task_names}, name=NAME)
    register_pool(NAME, lambda: pool)
    return pool


@pytest.mark.slow
def test_every_page_opens_on_the_lora_zoo(lora_zoo, monkeypatch) -> None:
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", NAME)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.selectbox(key="pool").value == NAME
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        if page == "pages/spectra.py":
            traces = {t["name"]: t for t in chart_data(at, "spectra")}
            assert set(lora_zoo.task_names) <= set(traces)
