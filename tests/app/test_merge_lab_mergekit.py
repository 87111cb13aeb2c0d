"""Merge lab (issue 25): the current merge offered as a mergekit-style YAML, which reads back through
spectral.mergekit to the method and parameters on screen."""
from __future__ import annotations

from typing import Any

import pytest
import yaml
from app_helpers import APP
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from spectral.mergekit import parse_config

TIMEOUT = 120


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self: Any, path_or_data: Any, mimetype: str, kind: Any, filename: str | None = None) -> str:
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = bytes(path_or_data) if isinstance(path_or_data, (bytes, bytearray)) else b""
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def exported(at: AppTest, stored: dict[str, bytes]) -> dict:
    [button] = [b for b in at.get("download_button") if b.proto.id.endswith("dl_ml_mergekit")]
    data = stored[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]
    [code] = [c for c in at.code if c.value.startswith("merge_method")]
    assert code.value.strip() == data.decode().strip()  # the YAML shown is the file downloaded
    return yaml.safe_load(data)


def test_merge_lab_exports_the_current_merge_as_mergekit_yaml(stored) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception and not at.error
    config = exported(at, stored)
    plan = parse_config(config, check_paths=False)  # the fake pool has no files: placeholders
    assert plan.method == "task_arithmetic" and config["base_model"] == "PATH/TO/BASE"
    assert plan.params == {"alpha": at.slider(key="ml_task_arithmetic_alpha").value}
    assert len(plan.models) == 4

    at.selectbox(key="ml_mk_method").set_value("tsv_m").run()
    at.slider(key="ml_tsv_m_alpha").set_value(1.3).run()
    assert not at.exception and not at.error
    plan = parse_config(exported(at, stored), check_paths=False)
    assert plan.method == "tsv_m" and plan.params["alpha"] == pytest.approx(1.3)
    widgets = {w.key: w.value for w in [*at.slider, *at.select_slider, *at.selectbox] if w.key}
    for name, value in plan.params.items():
        assert widgets[f"ml_tsv_m_{name}"] == pytest.approx(value) if isinstance(value, float) else value


def test_knots_is_offered_and_merges_in_the_lab(stored) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/merge_lab.py").run()
    assert "knots" in at.multiselect(key="ml_methods").options or "KnOTS" in at.multiselect(key="ml_methods").options
    at.multiselect(key="ml_methods").set_value(["task_arithmetic", "knots"]).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    at.selectbox(key="ml_knots_merge").set_value("dare").run()
    at.selectbox(key="ml_mk_method").set_value("knots").run()
    assert not at.exception and not at.error
    plan = parse_config(exported(at, stored), check_paths=False)
    assert plan.method == "knots" and plan.params["merge"] == "dare"
