"""Sweep figures: TSV-C rank fraction vs accuracy (TSV Fig. 2), α sensitivity (Iso Fig. 8), Iso-CTS common-subspace
fraction (Iso Fig. 6) and the TSV Table 4 ablation.

Sweep tables are long: model, value (the swept parameter), task, accuracy (%). Figures plot the mean over tasks.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_WIDTH, data_range, merge_style


def sweep_means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over tasks per (model, value), in the table's order."""
    return table.groupby(["model", "value"], sort=False, as_index=False)["accuracy"].mean()


def sweep_figure(
    table: pd.DataFrame,
    *,
    x_title: str,
    references: Mapping[str, float] | None = None,
    log_x: bool = False,
    mark_best: bool = False,
) -> go.Figure:
    """Mean accuracy over tasks against the swept value, one line per model; ``references`` (label → accuracy)
    are drawn as horizontal lines (fine-tuned, zero-shot, Iso-C, …)."""
    fig = go.Figure()
    means = sweep_means(table)
    for i, (model, sel) in enumerate(means.groupby("model", sort=False)):
        style = merge_style(str(model), i)
        color = style.color
        fig.add_trace(go.Scatter(x=sel.value, y=sel.accuracy, mode="lines+markers", name=str(model),
                                 line=style.line(MODEL_WIDTH - 0.5), marker=style.marker(6)))
        if mark_best and len(sel):
            best = sel.loc[sel.accuracy.idxmax()]
            fig.add_trace(go.Scatter(x=[best.value], y=[best.accuracy], mode="markers", showlegend=False,
                                     marker=dict(symbol="star", size=13, color=color,
                                                 line=dict(color="black", width=1)),
                                     hovertemplate=f"best {model}: %{{x}} → %{{y:.1f}}<extra></extra>"))
    # references are horizontal lines named in the legend (annotations beside them would collide when close)
    x_all = list(means.value)
    for j, (label, value) in enumerate((references or {}).items()):
        style = merge_style(label, j)
        fig.add_trace(go.Scatter(x=[min(x_all), max(x_all)] if x_all else [0, 1], y=[value, value], mode="lines",
                                 name=f"{label} ({value:.1f})", line=dict(color=style.color, dash="dash", width=1.2),
                                 hovertemplate=f"{label}: {value:.1f}<extra></extra>"))
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text="mean accuracy (%)")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig


def ablation_figure(table: pd.DataFrame) -> go.Figure:
    """TSV Table 4 as bars: mean accuracy of the four Task Arithmetic variants (low-rank approximation ×
    interference reduction), the change against plain Task Arithmetic on each bar.

    ``table``: variant, low_rank, interference_reduction, accuracy (mean, %), delta.
    """
    labels = [f"{'LR' if lr else '—'} / {'IR' if ir else '—'}" for lr, ir in zip(table.low_rank,
                                                                                    table.interference_reduction)]
    plain, tsv = merge_style("task_arithmetic").color, merge_style("tsv_m").color
    colors = ["#BBBBBB", plain, "#777777", tsv][: len(table)]
    fig = go.Figure(go.Bar(
        x=labels, y=table.accuracy, marker_color=colors, text=[f"{d:+.1f}" for d in table.delta],
        textposition="outside", customdata=table.variant,
        hovertemplate="%{customdata}: %{y:.1f}<extra></extra>",
    ))
    fig.update_xaxes(title_text="low-rank approximation / interference reduction")
    # the axis follows the data (a 1-point effect must be visible), with room above for the change labels
    lo, hi = data_range(table.accuracy) or (0.0, 100.0)
    span = hi - lo
    # a mean below 0 (a normalised token-loss score worse than the base) keeps its bar on screen
    bottom = lo - 0.6 * span if lo < 0 else max(0.0, lo - 0.6 * span)
    fig.update_yaxes(title_text="mean accuracy (%)", range=[bottom, hi + 0.35 * span])
    return fig
