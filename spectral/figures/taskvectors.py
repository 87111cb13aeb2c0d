"""Task-vector figures: per-layer norms and cosine similarity of flattened task vectors (Iso Fig. 2a)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

import numpy as np

from spectral.figures.style import DIVERGING, diverging_range, heat_text, missing_cells_traces, task_color


def norms_figure(table: pd.DataFrame, *, log_y: bool = False) -> go.Figure:
    """‖Δ_t‖_F of each matrix layer (x, model order) for every task (one line each).

    ``table``: :func:`spectral.analysis.task_vector_norms` (key, label, block, kind, task, norm).
    """
    fig = go.Figure()
    order = list(dict.fromkeys(table.label))
    for i, (task, sel) in enumerate(table.groupby("task", sort=False)):
        fig.add_trace(go.Scatter(x=sel.label, y=sel.norm, mode="lines+markers", name=str(task),
                                 line=dict(color=task_color(i), width=1.5), marker=dict(size=4)))
    fig.update_xaxes(title_text="layer", categoryorder="array", categoryarray=order, tickangle=-60)
    fig.update_yaxes(title_text="‖Δₜ‖_F", type="log" if log_y else "linear")
    fig.update_layout(legend_title_text="task", hovermode="x unified")
    return fig


def cosine_figure(matrix: pd.DataFrame) -> go.Figure:
    """Cosine similarity of the flattened task vectors (T × T heatmap, Iso Fig. 2a).

    Cosines are signed: a diverging scale centred on 0, its range set by the off-diagonal values (the diagonal is
    1 by definition and is drawn in the scale's end colour), so small overlaps between tasks stay visible."""
    names = [str(c) for c in matrix.columns]
    values = matrix.to_numpy(dtype=float)
    off = values.copy()
    if off.shape[0] == off.shape[1] and off.shape[0] > 1:
        np.fill_diagonal(off, np.nan)
    lo, hi = diverging_range(off)
    fig = go.Figure(missing_cells_traces(values, names, names))
    fig.add_trace(go.Heatmap(
        z=values, x=names, y=names, colorscale=DIVERGING, zmid=0.0, zmin=lo, zmax=hi,
        text=heat_text(values.tolist()), texttemplate="%{text}" if len(names) <= 15 else None,
        colorbar=dict(title="cos"), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(tickangle=-45, constrain="domain")
    return fig
