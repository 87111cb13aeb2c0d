"""Accuracy figures: per-dataset radar of merged models with zero-shot and fine-tuned (TSV Fig. 4)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_DASH, model_color, model_dash


def radar_figure(table: pd.DataFrame, *, value: str = "accuracy") -> go.Figure:
    """One closed polygon per model over the tasks; ``table``: :func:`spectral.analysis.accuracy_table`."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(table.task))
    for i, (model, sel) in enumerate(table.groupby("model", sort=False)):
        sel = sel.set_index("task").reindex(tasks)
        r = list(sel[value]) + [sel[value].iloc[0]]
        fig.add_trace(go.Scatterpolar(
            r=r, theta=tasks + [tasks[0]], mode="lines+markers", name=str(model),
            line=dict(color=model_color(str(model), i), dash=model_dash(str(model)),
                      width=1.5 if model in MODEL_DASH else 2.5),
            marker=dict(size=4),
            hovertemplate="%{theta}: %{r:.1f}<extra>" + str(model) + "</extra>",
        ))
    top = 100.0 if value == "accuracy" else max(1.0, float(table[value].max()))
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, top], angle=90, tickangle=90)),
                      legend=dict(orientation="h", y=-0.12, yanchor="top", x=0.5, xanchor="center"))
    return fig
