"""Task-vector figures: per-layer norms and cosine similarity of flattened task vectors (Iso Fig. 2a)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import heat_text, task_color


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
    """Cosine similarity of the flattened task vectors (T × T heatmap, Iso Fig. 2a)."""
    names = [str(c) for c in matrix.columns]
    values = matrix.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=values, x=names, y=names, colorscale="Blues", zmin=min(0.0, float(pd.DataFrame(values).min().min())),
        zmax=1.0, text=heat_text(values.tolist()), texttemplate="%{text}" if len(names) <= 15 else None,
        colorbar=dict(title="cos"), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(tickangle=-45, constrain="domain")
    return fig
