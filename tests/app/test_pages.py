"""AppTest tests of every page on the tiny fake pool: no exception, the expected widgets and charts, and a slider
move that changes a chart's data. Pages share one workspace (st.cache_resource), so later tests reuse its SVDs."""
from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import APP, chart_data, chart_keys
from streamlit.testing.v1 import AppTest

TIMEOUT = 120


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def slider(at: AppTest, key: str):
    return at.slider(key=key)


def test_overview_lists_pool_and_methods() -> None:
    at = open_page()
    assert at.title[0].value == "spectral"
    assert at.selectbox(key="pool").value == "fake-4"
    assert {"device", "pool"} <= {s.key for s in at.selectbox}
    names = set(at.dataframe[1].value["name"])
    assert {"tsv_m", "iso_cts", "task_arithmetic"} <= names
    assert [m.value for m in at.metric][:2] == ["4", "10"]


def test_task_vectors_page() -> None:
    at = open_page("pages/task_vectors.py")
    assert {"task_norms", "cosine"} <= set(chart_keys(at))
    assert {"tv_blocks", "tv_energy"} <= {s.key for s in at.slider}
    assert list(at.dataframe[0].value["task"]) == ["digits", "signs", "scenes", "textures"]
    before = chart_data(at, "task_norms")
    slider(at, "tv_blocks").set_value((1, 1)).run()
    assert not at.exception
    after = chart_data(at, "task_norms")
    assert len(after[0]["x"]) < len(before[0]["x"])  # block 0 dropped from every task's line


def test_spectra_page() -> None:
    at = open_page("pages/spectra.py")
    assert {"spectra", "energy", "interpolation", "effective_rank"} <= set(chart_keys(at))
    assert {"sp_beta", "sp_energy"} <= {s.key for s in at.slider}
    assert {"sp_tsv_m_k_frac", "sp_iso_cts_common_frac"} <= {s.key for s in at.select_slider}
    names = [t["name"] for t in chart_data(at, "spectra")]
    assert {"digits", "Task Arithmetic", "Iso-C", "Iso-CTS", "TSV-M"} <= set(names)

    before = chart_data(at, "interpolation")
    slider(at, "sp_beta").set_value(0.9).run()
    assert not at.exception
    after = chart_data(at, "interpolation")
    assert [t["y"] for t in after] != [t["y"] for t in before]

    tsv = [t for t in chart_data(at, "spectra") if t["name"] == "TSV-M"][0]["y"]
    k_frac = at.select_slider(key="sp_tsv_m_k_frac")
    k_frac.set_value(min((float(o) for o in k_frac.options), key=lambda v: abs(v - 0.05))).run()
    assert not at.exception
    tsv_after = [t for t in chart_data(at, "spectra") if t["name"] == "TSV-M"][0]["y"]
    assert tsv_after != tsv


def test_interference_page() -> None:
    at = open_page("pages/interference.py")
    assert {"sti_layers", "sti_blocks", "sti_zoom", "sti_before_after"} <= set(chart_keys(at))
    assert at.slider(key="if_kfrac").disabled
    before = chart_data(at, "sti_layers")[0]["z"]
    at.toggle(key="if_kdefault").set_value(False).run()
    slider(at, "if_kfrac").set_value(0.5).run()
    assert not at.exception and not at.error
    after = chart_data(at, "sti_layers")[0]["z"]
    assert after != before
    zoom = chart_data(at, "sti_zoom")[0]
    assert len(zoom["z"]) == 16  # k = int(0.5 · 32) rows of one task block


def test_alignment_page() -> None:
    at = open_page("pages/alignment.py")
    assert {"sar_matrix", "sar_nai"} <= set(chart_keys(at))
    assert any("Pearson" in m.label for m in at.metric)
    before = chart_data(at, "sar_matrix")[0]["z"]
    slider(at, "al_eps").set_value(0.4).run()
    assert not at.exception
    assert chart_data(at, "sar_matrix")[0]["z"] != before


def test_merge_lab_page() -> None:
    at = open_page("pages/merge_lab.py")
    assert "radar" in chart_keys(at)
    keys = {s.key for s in at.slider} | {s.key for s in at.select_slider}
    assert {"ml_task_arithmetic_alpha", "ml_tsv_m_alpha", "ml_tsv_m_k_frac", "ml_iso_cts_common_frac"} <= keys
    assert at.selectbox(key="ml_tsv_m_orthogonalisation").value == "procrustes"
    traces = {t["name"]: t["r"] for t in chart_data(at, "radar")}
    assert {"Zero-shot", "Fine-tuned", "TSV-M", "Iso-CTS", "Task Arithmetic"} <= set(traces)
    assert traces["Fine-tuned"][:4] == [100.0] * 4
    slider(at, "ml_task_arithmetic_alpha").set_value(1.0).run()
    assert not at.exception
    after = {t["name"]: t["r"] for t in chart_data(at, "radar")}
    assert after["Task Arithmetic"] != traces["Task Arithmetic"]
    assert after["Zero-shot"] == traces["Zero-shot"]
    summary = at.dataframe[0].value
    assert list(summary["model"])[0] == "Zero-shot" and "nai" in summary.columns


def test_merge_lab_method_choice_rebuilds_sliders() -> None:
    at = open_page("pages/merge_lab.py")
    at.multiselect(key="ml_methods").set_value(["ties", "cart"]).run()
    assert not at.exception and not at.error
    keys = {s.key for s in at.slider} | {s.key for s in at.select_slider}
    assert {"ml_ties_density", "ml_cart_k_frac"} <= keys and "ml_tsv_m_k_frac" not in keys


def test_sweeps_page() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    small = {"sw_rank_points": 3, "sw_alpha_points": 3, "sw_common_points": 3, "sw_ablation_select": False}
    for key, value in small.items():  # keep the grids small: every point merges and evaluates a model
        at.session_state[key] = value
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    # on open, only the visible sweep is drawn (and computed): st.tabs ran all four
    assert set(chart_keys(at)) == {"rank_sweep"}
    assert len({t["x"][0] for t in chart_data(at, "rank_sweep")[:1]}) == 1
    seen = {"rank_sweep"}
    for view, key in (("alpha", "alpha_sweep"), ("common", "common_frac_sweep"), ("ablation", "ablation")):
        at.segmented_control(key="sw_view").set_value(view).run()
        assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
        assert set(chart_keys(at)) == {key}
        seen.add(key)
        if view == "common":
            before = chart_data(at, "common_frac_sweep")
            assert len(before[0]["x"]) == 3
            slider(at, "sw_common_alpha").set_value(0.5).run()
            assert not at.exception
            assert chart_data(at, "common_frac_sweep")[0]["y"] != before[0]["y"]
    ablation = at.dataframe[0].value
    assert list(ablation["variant"]) == ["Task Arithmetic", "Low-rank only", "Interference reduction only", "TSV-M"]


def test_sweeps_page_computes_only_the_visible_sweep() -> None:
    import numpy as np

    from spectral.app_state import _WORKSPACES
    from spectral.figures import registry

    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for key, value in {"sw_rank_points": 4, "sw_alpha_points": 4, "sw_common_points": 4,
                       "sw_ablation_select": True, "sw_view": "common"}.items():
        at.session_state[key] = value
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(chart_keys(at)) == {"common_frac_sweep"}
    ws = next(w for w in _WORKSPACES.values() if w.spec == "fake-4")

    def known(kind: str, settings: dict) -> bool:  # memoised, or being computed in the background
        key = registry.data_key(kind, registry.resolve_settings(kind, settings))
        return key in ws.memo or ws.jobs.get(key) is not None

    common = sorted({round(float(f), 4) for f in np.linspace(0.0, 1.0, 4)})
    assert known("common_frac_sweep", {"fractions": common, "alpha": 1.5})
    rank = sorted({round(float(f), 4) for f in np.geomspace(0.01, 1.0, 4)})
    alphas = sorted({round(float(a), 4) for a in np.linspace(0.1, 2.5, 4)})
    assert not known("rank_sweep", {"fractions": rank, "log_x": True})
    assert not known("alpha_sweep", {"methods": ["task_arithmetic", "iso_c", "iso_cts"], "alphas": alphas})
    assert not known("ablation", {"select_alpha": True})


def test_export_page() -> None:
    at = open_page("pages/export.py")
    figures = set(at.dataframe[0].value["figure"])
    assert {"spectra", "radar", "sti_blocks", "sar_nai", "rank_sweep"} <= figures


def test_unreadable_pool_shows_error_and_app_keeps_running(tmp_path: Path) -> None:
    # (AppTest drops the sidebar from its element tree after switch_page, so this runs on the default page)
    at = open_page()
    at.selectbox(key="pool").set_value("Other: pool YAML or checkpoint folder…").run()
    assert not at.exception
    assert at.info  # asks for a path
    at.text_input(key="pool_path").input(str(tmp_path / "missing.yaml")).run()
    assert not at.exception
    assert at.error and "missing.yaml" in at.error[0].value
    at.selectbox(key="pool").set_value("fake-4").run()  # and it recovers
    assert not at.exception and not at.error
    assert at.title[0].value == "spectral" and at.metric


@pytest.mark.skipif(not (Path(APP).parent / "pages" / "adaptation.py").exists(), reason="no adaptation page")
def test_adaptation_page_is_listed() -> None:
    at = open_page()
    assert not at.exception


def test_overview_shows_each_tasks_test_data() -> None:
    at = open_page()
    table = at.table[0].value
    assert list(table["task"]) == ["digits", "signs", "scenes", "textures"]
    assert set(table["data"]) == {"found"} and all(int(n.replace(",", "")) > 0 for n in table["test images"])
