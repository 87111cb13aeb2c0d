"""The paper template: applied to a copy of a figure at export time only (on screen figures keep the app's theme).

Sizes follow two-column conference layouts (CVPR / ICML): one column ≈ 3.5 in, the full text width ≈ 7 in.
Kaleido measures figures in CSS pixels (96 per inch), so a 336-px-wide figure is a 252-pt (3.5 in) PDF page and a
font of ``s`` px prints at ``0.75 s`` pt: the smallest font here is 9 px = 6.75 pt (the minimum is 6 pt = 8 px).

One font family for everything, Greek and math symbols included: DejaVu Serif (Debian's ``fonts-dejavu-core``) has
σ, Σ, Δ, ‖, ᵀ, subscripts and arrows, so Chromium never falls back to a second face for a glyph.

Legends go above the plot area as rows of equal-width entries, as many per row as the width allows; the figure
grows by the legend's height so the plot keeps its size however many tasks and merges are listed.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import plotly.graph_objects as go
import plotly.io as pio

Columns = Literal["one", "two"]

PX_PER_INCH = 96
PT_PER_PX = 72 / PX_PER_INCH
#: figure widths in inches: one column, two columns (full text width)
WIDTH_IN: dict[str, float] = {"one": 3.5, "two": 7.0}
#: default heights in inches (of the plot part: a legend adds its own height)
HEIGHT_IN: dict[str, float] = {"one": 2.4, "two": 2.8}
#: base font size in CSS pixels per layout (10 px = 7.5 pt); ticks, legend and cell labels are one pixel smaller
FONT_PX: dict[str, int] = {"one": 10, "two": 11}
#: the minimum font at print size (6 pt)
MIN_FONT_PX = 8
#: the only family: full Greek and math coverage; "serif" only if DejaVu is not installed at all
FONT_FAMILY = "DejaVu Serif"
SERIF = f"{FONT_FAMILY}, serif"
#: average advance of a DejaVu Serif glyph in ems (for sizing legend entries; DejaVu is wide)
_EM_PER_CHAR = 0.62
#: a legend entry's symbol and gaps beside its text (plotly: 40 px item, text gap, item gap, border)
_ENTRY_EXTRA_PX = 60


def size_px(columns: Columns = "one", height_in: float | None = None) -> tuple[int, int]:
    """(width, height) in CSS pixels of a one- or two-column figure."""
    if columns not in WIDTH_IN:
        raise ValueError(f"columns must be 'one' or 'two', got {columns!r}")
    h = height_in if height_in is not None else HEIGHT_IN[columns]
    return round(WIDTH_IN[columns] * PX_PER_INCH), round(h * PX_PER_INCH)


def text_width_px(text: str, font_px: float) -> float:
    """Estimated width of ``text`` set in DejaVu Serif at ``font_px`` (upper bound for typical labels)."""
    return len(text) * font_px * _EM_PER_CHAR


def legend_entries(fig: go.Figure) -> list[str]:
    """Names of the legend's entries, in order (traces shown in the legend; one entry per legend group title)."""
    if fig.layout.showlegend is False:
        return []
    shown = []
    for trace in fig.data:
        if trace.showlegend is False or getattr(trace, "name", None) is None:
            continue
        if trace.type in ("heatmap", "histogram2d", "contour") and trace.showlegend is not True:
            continue
        shown.append(str(trace.name))
    forced = any(t.showlegend is True for t in fig.data if t.type not in ("heatmap", "histogram2d", "contour"))
    if len(shown) == 1 and fig.layout.showlegend is not True and not forced:
        return []  # plotly hides a one-trace legend unless asked
    return shown


def _legend_layout(fig: go.Figure, usable_px: int, font_px: int) -> tuple[dict[str, Any], int]:
    """(legend layout, its height in px): horizontal rows above the plot, equal entry widths."""
    entries = legend_entries(fig)
    if not entries:
        return {}, 0
    text_w = max(text_width_px(e, font_px) for e in entries)
    usable = usable_px - 8
    per_row = max(1, min(len(entries), int(usable // (text_w + _ENTRY_EXTRA_PX))))
    rows = math.ceil(len(entries) / per_row)
    row_px = max(19, round(font_px * 1.3) + 7)  # plotly's entry height: at least a 16-px symbol + gap
    height = rows * row_px + 8
    legend = dict(
        orientation="h", x=0, xanchor="left", xref="container", y=1, yanchor="top", yref="container",
        entrywidth=round(usable / per_row - _ENTRY_EXTRA_PX), entrywidthmode="pixels", itemwidth=30,
        traceorder="normal", tracegroupgap=0, font=dict(size=font_px), bgcolor="rgba(0,0,0,0)",
        title=dict(text=""), indentation=0,
    )
    return legend, height


def _is_square(fig: go.Figure) -> bool:
    """Matrices drawn with equal axes (SAR, cosine, UᵀU blocks) want a square plot."""
    return any(t.type == "heatmap" for t in fig.data) and any(
        getattr(fig.layout[name], "scaleanchor", None) for name in fig.layout if name.startswith("yaxis"))


def _fit_heatmap_text(fig: go.Figure, width: int, height: int, font_px: int) -> None:
    """Cell labels at ``font_px`` where every label fits its cell, none otherwise (plotly would shrink them below
    the minimum font)."""
    for trace in fig.data:
        if trace.type != "heatmap" or not trace.texttemplate or trace.z is None:
            continue
        rows = len(trace.z)
        cols = len(trace.z[0]) if rows else 0
        panels = max(1, sum(1 for t in fig.data if t.type == "heatmap" and t.texttemplate))
        # equal axes: the matrix is as wide as the plot is high, not as the page is wide
        span = min(width, height) if _is_square(fig) else width
        cell_w = 0.7 * span / max(cols * panels, 1)
        cell_h = 0.7 * height / max(rows, 1)
        label = max((len(str(v)) for row in (trace.text or []) for v in row), default=4)
        if cell_w < text_width_px("0" * label, font_px) + 2 or cell_h < font_px * 1.2:
            trace.update(texttemplate=None, text=None)
        else:
            trace.update(textfont=dict(size=font_px, family=SERIF))


#: tallest plot area the template grows a heatmap to so that every row is labelled (9 in at 96 px/in)
MAX_PLOT_HEIGHT_PX = 864


def _category_rows(fig: go.Figure) -> int:
    """Number of text categories on the y axis of the figure's heatmaps (0 when there are none)."""
    labels: set[str] = set()
    for trace in fig.data:
        ys = getattr(trace, "y", None) if trace.type == "heatmap" else None
        if ys is not None and len(ys) and isinstance(ys[0], str):
            labels.update(ys)
    return len(labels)


def _category_ticks(fig: go.Figure, width: int, height: int, font_px: int) -> None:
    """Every category labelled (plotly would silently skip task names on a dense axis), vertical where slanted
    labels would touch (e.g. 20 task names)."""
    square = _is_square(fig)
    thinned: dict[str, int] = {}
    for name in sorted(fig.layout, key=lambda n: not n.startswith("x")):  # x axes first: y follows in squares
        if not (name.startswith("xaxis") or name.startswith("yaxis")):
            continue
        axis = fig.layout[name]
        letter = name[0]
        labels = list(axis.ticktext) if axis.ticktext is not None else None
        if labels is None:
            values = [getattr(t, letter) for t in fig.data if getattr(t, letter, None) is not None
                      and len(getattr(t, letter)) and isinstance(getattr(t, letter)[0], str)]
            labels = list(dict.fromkeys(v for xs in values for v in xs))
            if labels and axis.tickvals is None and any(t.type == "heatmap" for t in fig.data):
                axis.update(dtick=1)
        if letter == "y":
            step = thinned.get(name[5:], 1) if square else 1
            if not square and labels:
                domain = axis.domain or (0, 1)
                per_label = height * 0.75 * (domain[1] - domain[0]) / len(labels)
                step = max(1, math.ceil(font_px * 1.3 / max(per_label, 1e-6)))
            if step > 1 and axis.ticktext is not None:
                axis.update(ticktext=[t if i % step == 0 else "" for i, t in enumerate(axis.ticktext)])
            elif step > 1:
                axis.update(dtick=step)
            if step > 1 and labels and not square:
                # say which rows carry no label (issue 29: an export that labelled 9 of 18 rows said nothing)
                title = axis.title.text or "rows"
                axis.update(title_text=f"{title} (every {step}{_ordinal(step)} of {len(labels)} labelled; "
                                       "all in the CSV)")
            continue
        if not labels:
            continue
        domain = axis.domain or (0, 1)
        span = width * 0.75 * (domain[1] - domain[0]) * (0.8 if square else 1.0)
        per_label = span / len(labels)
        longest = text_width_px(max(map(str, labels), key=len), font_px)
        if per_label < font_px * 1.3:
            # too dense to label every category at this width: every step-th name (the two-column export has all)
            step = math.ceil(font_px * 1.3 / max(per_label, 1e-6))
            thinned[name[5:]] = step
            if axis.ticktext is not None:
                axis.update(ticktext=[t if i % step == 0 else "" for i, t in enumerate(axis.ticktext)])
            else:
                axis.update(dtick=step)
            axis.update(tickangle=-90)
        elif per_label < font_px * 2.2:
            axis.update(tickangle=-90)
        elif per_label < longest + 4 and axis.tickangle is None:
            axis.update(tickangle=-45)


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def log_ticks(values: Any) -> tuple[list[float], list[str]]:
    """Tick values and labels of a log axis over ``values``, all in the tick font (plotly's own log ticks print
    the 2…9 digits between decades at about 70 % size, under the minimum): powers of ten as 10ⁿ when the data
    span two decades or more, else a 1-2-5 sequence."""
    import numpy as np

    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if not arr.size:
        return [], []
    lo, hi = math.floor(math.log10(arr.min())), math.ceil(math.log10(arr.max()))
    if math.log10(arr.max() / arr.min()) >= 2:
        step = max(1, math.ceil((hi - lo) / 6))
        exps = list(range(lo, hi + 1, step))
        return [10.0 ** e for e in exps], ["1" if e == 0 else f"10{str(e).translate(_SUPERSCRIPT)}" for e in exps]
    vals = [m * 10.0 ** e for e in range(lo - 1, hi + 1) for m in (1, 2, 5)]
    vals = [v for v in vals if arr.min() / 1.5 <= v <= arr.max() * 1.5]
    return vals, [f"{v:g}" for v in vals]


def _log_ticks(fig: go.Figure) -> None:
    for name in fig.layout:
        if not (name.startswith("xaxis") or name.startswith("yaxis")):
            continue
        axis = fig.layout[name]
        if axis.type != "log" or axis.tickvals is not None:
            continue
        letter, suffix = name[0], name[5:]
        ref = letter + suffix
        values: list[float] = []
        for trace in fig.data:
            if (getattr(trace, letter + "axis", None) or letter) == ref and getattr(trace, letter, None) is not None:
                values.extend(v for v in getattr(trace, letter) if isinstance(v, (int, float)))
        tickvals, ticktext = log_ticks(values)
        if tickvals:
            axis.update(tickmode="array", tickvals=tickvals, ticktext=ticktext)


def apply_paper_template(fig: go.Figure, columns: Columns = "one", height_in: float | None = None) -> go.Figure:
    """A copy of ``fig`` styled for print: simple_white base, one serif family, fonts ≥ 6 pt, sizes for one or two
    columns, the legend above the plot (growing the figure), axes that make room for their labels. The original
    figure is not modified."""
    width, plot_height = size_px(columns, height_in)
    base = FONT_PX[columns]
    small = base - 1
    out = go.Figure(fig)
    if height_in is None and _is_square(out):
        panels = max(1, sum(1 for name in out.layout if name.startswith("xaxis")))
        plot_height = round(width * (1.0 if columns == "one" else 0.55) / panels) + (110 if panels > 1 else 0)
    grid_rows = len({tuple(out.layout[n].domain or (0, 1)) for n in out.layout if n.startswith("yaxis")})
    if height_in is None and grid_rows > 1:
        plot_height = max(plot_height, 150 * grid_rows)  # panels stacked: each keeps a readable height
    rows = _category_rows(out)
    if height_in is None and rows and not _is_square(out):
        # every row label of a tall heatmap (effective rank per layer: 18 to 50 layers) at the tick font, up to a
        # page's height; past it, _category_ticks labels every step-th row and says so in the figure
        plot_height = max(plot_height, min(MAX_PLOT_HEIGHT_PX, math.ceil(rows * small * 1.3 / 0.75) + 40))
    polar = any(t.type in ("scatterpolar", "barpolar") for t in out.data)
    # plotly wraps a horizontal legend at the plot area's width (polar: inside its wide side margins)
    legend, legend_h = _legend_layout(out, width - (120 if polar else 16), small)
    has_title = bool(out.layout.title.text)
    title_lines = 0
    if has_title:  # (plotly anchors a multi-line title by its first line: the pad below moves it down)  # wrapped to the page width, at word boundaries
        words, lines, line = str(out.layout.title.text).split(" "), [], ""
        for word in words:
            if line and text_width_px(f"{line} {word}", base + 1) > width - 16:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        title_lines = len(lines)
        out.layout.title.text = "<br>".join(lines)
    subplot_titles = any((a.yref or "").endswith("paper") and (a.y or 0) >= 1 for a in out.layout.annotations)
    title_h = round(title_lines * (base + 1) * 1.3) + 6 if has_title else 0
    top = legend_h + title_h + (base + 6 if subplot_titles else 0) + 8
    margin = dict(l=8, r=8, t=top, b=14, pad=0)
    if polar:
        margin.update(l=60, r=60, t=top + 18, b=24)  # angular labels sit outside the polar domain
    out.update_layout(
        template=pio.templates["simple_white"],
        font=dict(family=SERIF, size=base, color="black"),
        width=width,
        height=plot_height + legend_h + (round(title_lines * (base + 1) * 1.3) + 6 if has_title else 0),
        margin=margin,
        title=dict(font=dict(size=base + 1), y=1, yref="container", yanchor="top", x=0, xanchor="left",
                   pad=dict(t=4 + round(max(0, title_lines - 1) * (base + 1) * 1.3), l=4), automargin=False),
        paper_bgcolor="white",
        plot_bgcolor="white",
        hoverlabel=dict(font=dict(family=SERIF)),
    )
    if legend:
        if title_h:  # the legend starts under the title
            legend["y"] = 1 - title_h / (plot_height + legend_h + title_h)
        out.update_layout(legend=legend, showlegend=True)
    for trace in out.data:
        if getattr(trace, "legendgrouptitle", None) is not None and trace.legendgrouptitle.text:
            trace.update(legendgrouptitle_text=None)  # the horizontal rows carry no group headers
        if trace.type == "scatter" and trace.textfont is not None:
            trace.update(textfont=dict(size=max(small, trace.textfont.size or 0), family=SERIF))
        if hasattr(trace, "colorbar") and trace.type in ("heatmap", "contour"):
            trace.update(colorbar=dict(thickness=10, tickfont=dict(size=small), outlinewidth=0, xpad=4,
                                       title=dict(font=dict(size=small), side="right")))
    out.update_xaxes(title_font=dict(size=base), tickfont=dict(size=small), automargin=True, title_standoff=4)
    out.update_yaxes(title_font=dict(size=base), tickfont=dict(size=small), automargin=True, title_standoff=4)
    out.update_polars(angularaxis=dict(tickfont=dict(size=small)), radialaxis=dict(tickfont=dict(size=small)))
    out.update_annotations(font=dict(family=SERIF, size=max(small, MIN_FONT_PX)))
    # simple_white fills shapes grey: keep outline boxes (task boundaries) transparent
    out.update_shapes(fillcolor="rgba(0,0,0,0)", selector=dict(type="rect"))
    _log_ticks(out)
    _fit_heatmap_text(out, width, plot_height, small)
    _category_ticks(out, width, plot_height, small)
    return out


def fit_screen_legend(fig: go.Figure, max_side_entries: int = 10) -> go.Figure:
    """On screen (app theme, no template): a legend with more entries than fit beside the plot (e.g. 14 tasks and
    four merges) goes above it in rows, and the figure grows by those rows, so no entry is cut off. In place."""
    entries = legend_entries(fig)
    if len(entries) <= max_side_entries:
        return fig
    longest = max(len(e) for e in entries)
    per_row = max(1, 700 // (longest * 8 + 50))  # a typical page column is ≥ 700 px wide
    rows = math.ceil(len(entries) / per_row)
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom",
                                  entrywidth=longest * 8, entrywidthmode="pixels"),
                      height=(fig.layout.height or 450) + 22 * rows)
    return fig
