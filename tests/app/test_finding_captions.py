"""The Interference and Alignment pages caption their figures with what the data on screen shows (issue 29),
computed by :mod:`spectral.figures.captions`, not a fixed sentence."""
from __future__ import annotations

from app_helpers import APP
from streamlit.testing.v1 import AppTest

from spectral.app_state import _WORKSPACES
from spectral.figures import registry
from spectral.figures.captions import alignment_caption, sti_layers_caption


def _captions(at: AppTest) -> list[str]:
    return [str(c.value) for c in at.caption]


def _memo(kind: str, settings: dict) -> registry.FigureData:
    ws = next(w for w in _WORKSPACES.values() if w.spec == "fake-4")
    return ws.memo.get(registry.data_key(kind, registry.resolve_settings(kind, settings)))


def test_interference_caption_is_computed_from_the_heatmap_data() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/interference.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = sti_layers_caption(_memo("sti_layers", {"k_frac": None}).table)
    assert shown in _captions(at) and "On this pool the highest layer is" in shown
    assert not any("interference is highest in early layers" in c for c in _captions(at))

    at.toggle(key="if_kdefault").set_value(False).run()
    at.slider(key="if_kfrac").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]
    other = sti_layers_caption(_memo("sti_layers", {"k_frac": 0.5}).table)
    assert other in _captions(at)


def test_alignment_caption_names_this_pools_correlation() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/alignment.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    data = _memo("sar_nai", {"eps": 0.05, "k_rule": "paper"})
    expected = alignment_caption(data.meta["pearson_r"])
    assert any(c.startswith(expected) for c in _captions(at))
    for model, r in data.meta["pearson_r"].items():
        assert metrics[f"Pearson's r · {model}"] == ("undefined" if r is None else f"{r:.2f}")
        assert (f"{model}: r = {r:.2f}" if r is not None else f"{model}: r undefined") in expected
