"""Colours that tell the truth (issue 11): one task palette for 20 tasks, merges distinct from tasks and the same
everywhere, ranges that follow the data, diverging scales centred on 0, missing cells named, log axes where values
span decades, bar axes that show the effect; download names that carry the figure's state; figures that do not
import the dashboard."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from spectral.figures import alignment, interference, style, sweeps, taskvectors
from spectral.figures.export import MAX_STEM, file_stem
from spectral.figures.template import apply_paper_template, log_ticks
from spectral.methods import get_method


def test_twenty_distinct_task_colours_none_shared_with_a_merge() -> None:
    tasks = [style.task_color(i).lower() for i in range(20)]
    assert len(set(tasks)) == 20
    merges = {s.color.lower() for s in style.MERGE_STYLES.values()}
    assert not merges & set(tasks)
    assert style.task_color(20) == style.task_color(0)  # beyond 20 the palette repeats, it does not fail


@pytest.mark.parametrize("method", ["weight_average", "task_arithmetic", "ties", "tsv_m", "iso_c", "iso_cts", "cart"])
def test_a_method_looks_the_same_by_id_and_display_name(method: str) -> None:
    by_id = style.merge_style(method)
    assert style.merge_style(get_method(method).display_name) == by_id
    assert style.merge_style(get_method(method).display_name.upper()) == by_id
    assert style.merge_style(f"{get_method(method).display_name} · run-1, 300 steps") == by_id


def test_merges_differ_in_colour_or_dash_and_adaptation_keeps_its_base_colour() -> None:
    looks = [(s.color, s.dash) for s in style.MERGE_STYLES.values()]
    assert len(set(looks)) == len(looks)
    ada = style.merge_style("TA+AdaRank")
    assert ada.color == style.merge_style("task_arithmetic").color and ada.dash != "dash"
    assert style.merge_style("CART+AdaMerging (layer-wise)").color == style.merge_style("cart").color
    unknown = style.merge_style("some new method", 1)
    assert unknown.color.lower() not in {c.lower() for c in style.TASK_PALETTE}


def test_ranges() -> None:
    assert style.diverging_range([[-0.1, 0.3], [np.nan, 0.05]]) == (-0.3, 0.3)
    assert style.data_range([0.8, 0.89, np.nan]) == (0.8, 0.89)
    lo, hi = style.data_range([0.5, 0.5])
    assert lo < 0.5 < hi
    assert style.data_range([np.nan]) is None
    assert style.spans_decades([1e-13, 2.0]) and not style.spans_decades([0.5, 3.0])


def test_cosine_scale_is_diverging_around_zero_from_the_off_diagonal() -> None:
    names = ["a", "b", "c"]
    cos = pd.DataFrame([[1.0, -0.2, 0.1], [-0.2, 1.0, np.nan], [0.1, np.nan, 1.0]], index=names, columns=names)
    fig = taskvectors.cosine_figure(cos)
    heat = [t for t in fig.data if t.type == "heatmap" and t.showscale is not False][-1]
    assert heat.zmid == 0 and (heat.zmin, heat.zmax) == (-0.2, 0.2)  # negative cosines are not clipped to white
    legend = [t.name for t in fig.data if t.type == "scatter"]
    assert legend == ["no value (2 cells)"]  # a missing pair is named, not drawn as a zero


def test_sar_matrix_colours_follow_the_data() -> None:
    names = ["a", "b", "c"]
    sar = pd.DataFrame([[1.0, 0.80, 0.85], [0.82, 1.0, 0.89], [0.81, 0.84, 1.0]], index=names, columns=names)
    heat = alignment.sar_matrix_figure(sar).data[-1]
    assert (heat.zmin, heat.zmax) == (0.80, 0.89)


def test_sti_before_after_uses_a_log_axis_when_tsv_m_removes_the_interference() -> None:
    table = pd.DataFrame({"block": [0, 0, 1], "label": ["0·in_proj", "0·c_fc", "1·in_proj"],
                          "before": [2.0, 3.0, 1.5], "after": [1e-13, 3e-13, 2e-13]})
    fig = interference.sti_before_after_figure(table)
    assert fig.layout.yaxis.type == "log"
    tickvals, ticktext = log_ticks([1e-13, 3.0])
    assert tickvals[0] == 1e-13 and ticktext[0] == "10⁻¹³"
    paper = apply_paper_template(fig)
    assert paper.layout.yaxis.ticktext[0] == "10⁻¹³"  # in the tick font, not plotly's 70 % superscripts


def test_ablation_axis_shows_a_one_point_effect() -> None:
    table = pd.DataFrame({"variant": ["TA", "LR", "IR", "TSV-M"], "low_rank": [False, True, False, True],
                          "interference_reduction": [False, False, True, True],
                          "accuracy": [70.0, 70.4, 70.9, 71.0], "delta": [0.0, 0.4, 0.9, 1.0]})
    lo, hi = sweeps.ablation_figure(table).layout.yaxis.range
    assert lo > 60 and hi < 75  # not 0–100
    assert lo < 70.0 and hi > 71.0


def test_download_names_carry_the_state_and_stay_short() -> None:
    from spectral.figures import registry

    a = registry.download_stem("spectra", "zoo-8", {"methods": ["task_arithmetic", "iso_c"]}, {"layer": "0·in_proj"})
    b = registry.download_stem("spectra", "zoo-8", {"methods": ["task_arithmetic", "iso_c"]}, {"layer": "3·c_fc"})
    assert a != b and "layer=0.in_proj" in a and "methods=ta+isoc" in a
    assert registry.download_stem("sar_matrix", "zoo-8", {}) == "sar_matrix-zoo-8"  # defaults say nothing
    long = file_stem("radar", "/data/pools/my pool.yaml", {"methods": ["task_arithmetic"] * 30, "x": 1})
    assert len(long) <= MAX_STEM and long.startswith("radar-my_pool-")
    assert long != file_stem("radar", "/data/pools/my pool.yaml", {"methods": ["task_arithmetic"] * 29, "x": 1})
    for stem in (a, long):
        assert all(c.isalnum() or c in "_.+=-" for c in stem)


def test_figures_do_not_import_the_dashboard() -> None:
    code = ("import sys; import spectral.figures.registry, spectral.figures.sweep_runner, spectral.figures.export; "
            "sys.exit(1 if 'spectral.app_state' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
