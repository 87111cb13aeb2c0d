"""Downloads (issue 29): every file exists before its button is clicked (no lazy ``data=callable`` file that a
later script run may delete before the browser fetches it), names carry the figure's state, and the paper
exports are rendered by one click with their errors on the page."""
from __future__ import annotations

from typing import Any

import pytest
from app_helpers import APP
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from spectral.figures.export import find_chromium


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str | None, bytes]]:
    """Media file id → (file name, bytes) of every file a run stored."""
    files: dict[str, tuple[str | None, bytes]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self: Any, path_or_data: Any, mimetype: str, kind: Any, filename: str | None = None) -> str:
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = (filename, bytes(path_or_data) if isinstance(path_or_data, (bytes, bytearray)) else b"")
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def downloads(at: AppTest, stored: dict[str, tuple[str | None, bytes]]) -> dict[str, tuple[str, bytes]]:
    """Widget key → (file name, bytes) of every download button on the page; none may be lazy."""
    out = {}
    for button in at.get("download_button"):
        proto = button.proto
        assert not proto.deferred_file_id, f"{proto.id}: a lazy download can be deleted before it is fetched"
        file_id = proto.url.rsplit("/", 1)[-1].split(".")[0]
        name, data = stored[file_id]
        out[proto.id.rsplit("-", 1)[-1]] = (name, data)
    return out


def test_interference_downloads_name_k_and_render_on_one_click(stored: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/interference.py").run()
    assert not at.exception, [e.value for e in at.exception]
    files = downloads(at, stored)
    assert files["dl_sti_layers_csv"][0] == "sti_layers-fake-4-k=r_T.csv"  # k = r/T named, not left out
    assert b"sti" in files["dl_sti_layers_csv"][1].splitlines()[0]  # the per-layer table
    assert files["dl_sti_layers_yaml"][0] == "sti_layers-fake-4-k=r_T.yaml"
    assert b"figure: sti_layers" in files["dl_sti_layers_yaml"][1]
    assert "dl_sti_layers_pdf" not in files and at.button(key="prep_sti_layers")

    if find_chromium() is None:
        pytest.skip("the paper export needs Debian's chromium")
    at.button(key="prep_sti_layers").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    files = downloads(at, stored)
    name, pdf = files["dl_sti_layers_pdf"]
    assert name == "sti_layers-fake-4-k=r_T.pdf" and pdf.startswith(b"%PDF")
    assert files["dl_sti_layers_svg"][1].lstrip().startswith(b"<svg")
    assert files["dl_sti_layers_png"][1].startswith(b"\x89PNG")
    assert "prep_sti_layers" not in {b.key for b in at.button}  # the downloads took the button's place
    at.run()  # and stay there on the next run, without rendering again
    assert "dl_sti_layers_pdf" in downloads(at, stored)


def test_merge_lab_names_carry_changed_parameters(stored: dict) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.session_state["ml_adapted"] = []  # other tests may have stored adaptation results for this pool
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert downloads(at, stored)["dl_radar_csv"][0] == "radar-fake-4.csv"  # every setting at its default
    at.slider(key="ml_tsv_m_alpha").set_value(0.5).run()
    names = {k: v[0] for k, v in downloads(at, stored).items()}
    assert names["dl_radar_csv"] == "radar-fake-4-tsvm.a=0.5.csv"
    assert names["dl_radar_yaml"] == "radar-fake-4-tsvm.a=0.5.yaml"
