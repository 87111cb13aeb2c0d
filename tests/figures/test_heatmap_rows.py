"""The paper export of a layer × task heatmap labels every row (issue 29: the effective-rank PDF labelled 9 of
its 18 layer rows), or, past a page's height, says in the figure which rows carry a label."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from spectral.figures.export import export_figure, find_chromium
from spectral.figures.spectra import effective_rank_heatmap
from spectral.figures.template import apply_paper_template


def table(layers: int, tasks: int = 4) -> pd.DataFrame:
    rows = [{"label": f"{b // 2}·{'in_proj' if b % 2 == 0 else 'c_fc'}", "task": f"task{t}", "fraction": (b + t) / 99,
             "effective_rank": b + t} for b in range(layers) for t in range(tasks)]
    return pd.DataFrame(rows)


def labelled_rows(fig) -> list[str]:
    """The row labels plotly draws: every category at dtick 1 (or an explicit tick array), else every dtick-th."""
    axis = fig.layout.yaxis
    labels = list(dict.fromkeys(v for t in fig.data if t.type == "heatmap" for v in t.y))
    if axis.ticktext is not None:
        return [t for t in axis.ticktext if t]
    step = int(axis.dtick or 1)
    return labels[::step]


@pytest.mark.parametrize("columns", ["one", "two"])
def test_every_one_of_18_rows_is_labelled(columns: str) -> None:
    fig = apply_paper_template(effective_rank_heatmap(table(18)), columns)
    rows = list(dict.fromkeys(table(18).label))
    assert labelled_rows(fig) == rows and len(rows) == 18
    assert "labelled" not in (fig.layout.yaxis.title.text or "")


def test_too_many_rows_say_which_are_labelled() -> None:
    fig = apply_paper_template(effective_rank_heatmap(table(240)), "one")
    shown = labelled_rows(fig)
    assert 1 < len(shown) < 240
    step = int(fig.layout.yaxis.dtick)
    assert re.search(rf"every {step}(st|nd|rd|th) of 240 labelled; all in the CSV", fig.layout.yaxis.title.text)


@pytest.mark.skipif(find_chromium() is None, reason="the export needs Debian's chromium")
def test_the_exported_svg_draws_all_18_row_labels() -> None:
    svg = export_figure(effective_rank_heatmap(table(18)), "svg", columns="one").decode()
    drawn = set(re.findall(r">(\d+·(?:in_proj|c_fc))<", svg))
    assert drawn == set(table(18).label)
