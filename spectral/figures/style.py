"""The one place for colours and line styles of every figure (screen and paper), so a task or a merge looks the same
on every page.

- Tasks: :func:`task_color` — one qualitative palette of 20 colours (Paul Tol's colour-blind-safe *muted*, *light*
  and *vibrant* schemes, ordered so that the first 8, 14 and 20 tasks of the papers' suites stay apart), drawn as
  thin lines.
- Merges and reference models: :func:`merge_style` — a colour from the Okabe-Ito colour-blind-safe set (or black /
  grey for the references), plus a line dash and a marker symbol that are unique per method, drawn thick. Tasks
  never use dashes, so a dashed or thick line is always a model.
- Signed values: :data:`DIVERGING` centred on 0 (:func:`diverging_range`); non-negative values: :data:`SEQUENTIAL`
  over the data's own range (:func:`data_range`); missing cells: :data:`MISSING_COLOR` (named in the legend by
  :func:`missing_cells_traces`).

Other modules (e.g. a new figure) use these functions, never literal colours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

#: 20 task colours: Tol muted (9), Tol light (6, the ones dark enough for thin lines on white), Tol vibrant (5)
TASK_PALETTE: tuple[str, ...] = (
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
    "#77AADD", "#EE8866", "#FFAABB", "#44BB99", "#BBCC33", "#AAAA00",
    "#0077BB", "#EE7733", "#009988", "#CC3311", "#EE3377",
)
#: line width of a task's line and of a model's line (pixels)
TASK_WIDTH = 1.0
MODEL_WIDTH = 2.5
#: heatmap scales: sequential for magnitudes, diverging (blue–white–red, Tol's "sunset"-like RdBu) for signed values
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
#: cells without a value (NaN): drawn in this grey, named "no value" in the legend
MISSING_COLOR = "#BBBBBB"


@dataclass(frozen=True)
class MergeStyle:
    """How one model is drawn: line colour, dash, marker symbol."""

    color: str
    dash: str = "solid"
    symbol: str = "circle"

    def line(self, width: float = MODEL_WIDTH) -> dict[str, Any]:
        return {"color": self.color, "dash": self.dash, "width": width}

    def marker(self, size: float = 6) -> dict[str, Any]:
        return {"color": self.color, "symbol": self.symbol, "size": size}


# Okabe & Ito (2008): orange, sky blue, bluish green, blue, vermillion, reddish purple, yellow (too light: unused)
_OI = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "blue": "#0072B2", "vermillion": "#D55E00",
       "purple": "#CC79A7"}
#: by method id; display names map onto these through :data:`_ALIASES`
MERGE_STYLES: dict[str, MergeStyle] = {
    "zeroshot": MergeStyle("#777777", "dot", "circle-open"),
    "finetuned": MergeStyle("#000000", "dash", "square-open"),
    "weight_average": MergeStyle(_OI["sky"], "dot", "triangle-up"),
    "task_arithmetic": MergeStyle(_OI["orange"], "dash", "square"),
    "ties": MergeStyle(_OI["purple"], "longdash", "diamond"),
    "consensus": MergeStyle("#6B4C9A", "dashdot", "x"),
    "tsv_m": MergeStyle(_OI["vermillion"], "solid", "star"),
    "tsv_lowrank": MergeStyle(_OI["vermillion"], "longdashdot", "star-open"),
    "tsv_c": MergeStyle("#8C510A", "longdashdot", "hexagon"),
    "iso_c": MergeStyle(_OI["blue"], "solid", "circle"),
    "iso_cts": MergeStyle(_OI["green"], "solid", "diamond"),
    "cart": MergeStyle("#4D4D4D", "solid", "pentagon"),
}
_ALIASES: dict[str, str] = {
    "zero-shot": "zeroshot", "zeroshot": "zeroshot", "fine-tuned": "finetuned", "finetuned": "finetuned",
    "weight averaging": "weight_average", "weight_average": "weight_average",
    "task arithmetic": "task_arithmetic", "task_arithmetic": "task_arithmetic", "ta": "task_arithmetic",
    "ties": "ties", "consensus ta": "consensus", "consensus": "consensus",
    "tsv-m": "tsv_m", "tsv_m": "tsv_m", "tsv low-rank only": "tsv_lowrank", "tsv_lowrank": "tsv_lowrank",
    "tsv-c": "tsv_c", "tsv-c (compression)": "tsv_c", "tsv_c": "tsv_c",
    "iso-c": "iso_c", "iso_c": "iso_c", "iso-cts": "iso_cts", "iso_cts": "iso_cts", "cart": "cart",
}
#: a model that is none of the above (a new method): these, in turn, never a task colour
_FALLBACK = (MergeStyle("#5E3C99", "dash", "cross"), MergeStyle("#1B7837", "dot", "triangle-down"),
             MergeStyle("#B35806", "dashdot", "hourglass"), MergeStyle("#2D004B", "longdash", "bowtie"))


def _base_name(name: str) -> str:
    # a stored result is "<method> · <run>, <steps>": every run of a method shares the method's colour
    return name.split(" · ")[0].strip()


def merge_style(name: str, fallback_index: int = 0) -> MergeStyle:
    """Style of a merge or reference model, by method id (``tsv_m``) or display name (``TSV-M``, case-insensitive).

    Test-time adaptation (``TA+AdaRank``, ``CART+AdaMerging (layer-wise)``) takes its base method's colour with a
    dash-dot line and open markers (it saw unlabelled test images, unlike the static merges); AdaMerging is dotted.
    """
    base = _base_name(name)
    if "+" in base and ("AdaRank" in base or "AdaMerging" in base):
        start, _, rest = base.partition("+")
        parent = merge_style(start, fallback_index)
        dash = "dashdot" if rest.startswith("AdaRank") else "longdashdot"
        if "layer" in rest:
            dash = "dot"
        return MergeStyle(parent.color, dash, parent.symbol.replace("-open", "") + "-open")
    key = _ALIASES.get(base.lower())
    if key is None:
        return _FALLBACK[fallback_index % len(_FALLBACK)]
    return MERGE_STYLES[key]


def model_color(name: str, fallback_index: int = 0) -> str:
    """A model's fixed colour (see :func:`merge_style`)."""
    return merge_style(name, fallback_index).color


def model_dash(name: str) -> str:
    """A model's line dash (see :func:`merge_style`)."""
    return merge_style(name).dash


def is_reference(name: str) -> bool:
    """Zero-shot and fine-tuned: thinner lines than the merges."""
    return _ALIASES.get(_base_name(name).lower()) in ("zeroshot", "finetuned")


def task_color(index: int) -> str:
    """Colour of the ``index``-th task (0-based, in the pool's order); 20 distinct colours, then they repeat."""
    return TASK_PALETTE[index % len(TASK_PALETTE)]


# -- colour ranges -------------------------------------------------------------------------------------------------
def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def data_range(values: Any, *, pad: float = 0.0) -> tuple[float, float] | None:
    """(min, max) of the finite values (``pad`` × span added on both sides), None when there are none; a constant
    matrix gets a small span so that it is not drawn as the scale's end."""
    arr = _finite(values)
    if not arr.size:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    span = hi - lo
    if span == 0:
        span = abs(hi) * 0.05 or 1.0
        return lo - span, hi + span
    return lo - pad * span, hi + pad * span


def diverging_range(values: Any) -> tuple[float, float]:
    """A range symmetric about 0 covering the finite values (signed data: cosines, signed differences)."""
    arr = _finite(values)
    top = float(np.abs(arr).max()) if arr.size else 1.0
    top = top or 1.0
    return -top, top


def spans_decades(values: Iterable[float], decades: float = 2.0) -> bool:
    """True when the positive values span at least ``decades`` orders of magnitude (then use a log axis)."""
    arr = _finite(list(values))
    arr = arr[arr > 0]
    return bool(arr.size >= 2 and math.log10(arr.max() / arr.min()) >= decades)


def missing_cells_traces(values: Any, x: Sequence[Any], y: Sequence[Any], **axes: str) -> list[go.BaseTraceType]:
    """Traces that draw the NaN cells of ``values`` grey and name them "no value" in the legend (empty when every
    cell has a value). Added under the data heatmap, they make a missing cell visibly different from a zero."""
    arr = np.asarray(values, dtype=float)
    missing = ~np.isfinite(arr)
    if not missing.any():
        return []
    z = np.where(missing, 1.0, np.nan)
    grey = go.Heatmap(z=z, x=list(x), y=list(y), colorscale=[[0, MISSING_COLOR], [1, MISSING_COLOR]],
                      showscale=False, hoverinfo="skip", **axes)
    legend = go.Scatter(x=[None], y=[None], mode="markers", name=f"no value ({int(missing.sum())} cells)",
                        marker=dict(symbol="square", size=10, color=MISSING_COLOR), showlegend=True, **axes)
    return [grey, legend]


def heat_text(values: Any, digits: int = 2, limit: int = 15) -> list[list[str]] | None:
    """Cell labels for a small heatmap (None when the matrix is too large to label); NaN cells read "–"."""
    if len(values) > limit:
        return None
    return [[("–" if v != v else f"{v:.{digits}f}") for v in row] for row in values]
