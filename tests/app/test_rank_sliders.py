"""Rank sliders of the Merge lab step only through values that change the merge and show the sizes used
(issue 29)."""
from __future__ import annotations

from app_helpers import APP, chart_data
from streamlit.testing.v1 import AppTest

from spectral import analysis
from spectral.app_state import _WORKSPACES
from spectral.methods import get_method
from spectral.methods.effective import distinct_values, effective_sizes


def test_merge_lab_rank_sliders_snap_and_show_sizes() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    ws = next(w for w in _WORKSPACES.values() if w.spec == "fake-4")
    ranks = sorted(set(analysis.layers(ws.taskset).r))
    T = len(ws.task_names)
    common = next(p for p in get_method("iso_cts").params if p.name == "common_frac")
    widget = at.select_slider(key="ml_iso_cts_common_frac")
    options = [float(o) for o in widget.options]
    assert options == distinct_values(common, ranks, T, keep=[0.8])
    assert len(options) < 101  # fewer than the 0.01 grid: dead steps are gone
    assert float(widget.value) == 0.8

    captions = " ".join(str(c.value) for c in at.caption)
    for r, sizes in effective_sizes(common, 0.8, ranks, T).items():
        assert f"k = {sizes['k']}, s = {sizes['s']} (r = {r}" in captions

    # the neighbouring step is another merge: other sizes, and the radar is redrawn
    before = {t["name"]: t["r"] for t in chart_data(at, "radar")}["Iso-CTS"]
    following = options[options.index(0.8) - 1]
    widget.set_value(following).run()
    assert not at.exception, [e.value for e in at.exception]
    assert effective_sizes(common, following, ranks, T) != effective_sizes(common, 0.8, ranks, T)
    captions = " ".join(str(c.value) for c in at.caption)
    r0, s0 = next(iter(effective_sizes(common, following, ranks, T).items()))
    assert f"k = {s0['k']}, s = {s0['s']} (r = {r0}" in captions
    after = {t["name"]: t["r"] for t in chart_data(at, "radar")}["Iso-CTS"]
    assert len(after) == len(before)
