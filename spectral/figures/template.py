"""The paper template: applied to a copy of a figure at export time only (on screen figures keep the app's theme).

Sizes follow two-column conference layouts (CVPR / ICML): one column ≈ 3.5 in, the full text width ≈ 7 in.
Kaleido measures figures in CSS pixels (96 per inch), so a 336-px-wide figure is a 252-pt (3.5 in) PDF page.
"""
from __future__ import annotations

from typing import Literal

import plotly.graph_objects as go
import plotly.io as pio

Columns = Literal["one", "two"]

PX_PER_INCH = 96
#: figure widths in inches: one column, two columns (full text width)
WIDTH_IN: dict[str, float] = {"one": 3.5, "two": 7.0}
#: default heights in inches
HEIGHT_IN: dict[str, float] = {"one": 2.6, "two": 3.0}
#: base font size in points per layout
FONT_PT: dict[str, int] = {"one": 8, "two": 9}
#: Liberation Serif is metric-compatible with Times and ships with Debian's fonts; Times first where installed
SERIF = "Times New Roman, Times, Liberation Serif, DejaVu Serif, serif"


def size_px(columns: Columns = "one", height_in: float | None = None) -> tuple[int, int]:
    """(width, height) in CSS pixels of a one- or two-column figure."""
    if columns not in WIDTH_IN:
        raise ValueError(f"columns must be 'one' or 'two', got {columns!r}")
    h = height_in if height_in is not None else HEIGHT_IN[columns]
    return round(WIDTH_IN[columns] * PX_PER_INCH), round(h * PX_PER_INCH)


def apply_paper_template(fig: go.Figure, columns: Columns = "one", height_in: float | None = None) -> go.Figure:
    """A copy of ``fig`` styled for print: simple_white base, serif font, sizes for one or two columns, tight
    margins, no interactive-only chrome. The original figure is not modified."""
    width, height = size_px(columns, height_in)
    font = FONT_PT[columns]
    out = go.Figure(fig)
    out.update_layout(
        template=pio.templates["simple_white"],
        font=dict(family=SERIF, size=font, color="black"),
        width=width,
        height=height,
        margin=dict(l=48, r=12, t=28 if out.layout.title.text else 12, b=40),
        legend=dict(font=dict(size=font - 1), bgcolor="rgba(255,255,255,0.8)"),
        title=dict(font=dict(size=font + 1)),
        paper_bgcolor="white",
        plot_bgcolor="white",
    )
    out.update_xaxes(title_font=dict(size=font), tickfont=dict(size=font - 1))
    out.update_yaxes(title_font=dict(size=font), tickfont=dict(size=font - 1))
    out.update_annotations(font=dict(family=SERIF, size=font - 1))
    # simple_white fills shapes grey: keep outline boxes (task boundaries) transparent
    out.update_shapes(fillcolor="rgba(0,0,0,0)", selector=dict(type="rect"))
    return out
