"""The merge lab on a decoder-LLM pool whose tasks are JSONL text files (issue 25 item 3): the radar's spokes say
"loss, normalised", the zero-shot (base) polygon sits at 0 and the fine-tuned one at 100 on every spoke."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from app_helpers import APP, chart_data, chart_keys
from streamlit.testing.v1 import AppTest

from spectral.app_state import register_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_fixtures import write_tiny_causal_pool  # noqa: E402

NAME = "causal-lm-test"
TASKS = ("math", "code", "chat")


@pytest.fixture(scope="module")
def causal_pool(tmp_path_factory):
    from spectral.checkpoints.pool import open_pool

    paths = write_tiny_causal_pool(tmp_path_factory.mktemp("causal_app"), TASKS)
    pool = open_pool(str(paths["yaml"]))
    register_pool(NAME, lambda: pool)
    return pool


def test_merge_lab_shows_normalised_loss_scores(causal_pool, monkeypatch) -> None:
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", NAME)
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert at.selectbox(key="pool").value == NAME
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "radar" in chart_keys(at)
    traces = {t["name"]: t for t in chart_data(at, "radar") if "CI" not in t["name"]}
    spokes = set(traces["Zero-shot"]["theta"])
    assert spokes == {f"{t} (loss, normalised)" for t in TASKS}
    assert set(traces["Zero-shot"]["r"]) == {0.0}
    assert set(traces["Fine-tuned"]["r"]) == {100.0}
    radio = at.radio(key="ml_value")
    assert "token loss normalised" in radio.format_func("accuracy")
