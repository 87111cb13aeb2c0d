"""Accuracy figures: per-dataset radar of merged models with zero-shot and fine-tuned (TSV Fig. 4)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_WIDTH, is_reference, merge_style


def radar_figure(table: pd.DataFrame, *, value: str = "accuracy") -> go.Figure:
    """One closed polygon per model over the tasks; ``table``: :func:`spectral.analysis.accuracy_table`."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(table.task))
    for i, (model, sel) in enumerate(table.groupby("model", sort=False)):
        sel = sel.set_index("task").reindex(tasks)
        r = list(sel[value]) + [sel[value].iloc[0]]
        fig.add_trace(go.Scatterpolar(
            r=r, theta=tasks + [tasks[0]], mode="lines+markers", name=str(model),
            line=merge_style(str(model), i).line(1.5 if is_reference(str(model)) else MODEL_WIDTH - 0.5),
            marker=merge_style(str(model), i).marker(5),
            hovertemplate="%{theta}: %{r:.1f}<extra>" + str(model) + "</extra>",
        ))
    top = 100.0 if value == "accuracy" else max(1.0, float(table[value].max()))
    # the radial tick labels run between the first two spokes, never over a spoke or its task label
    between = 180.0 / max(len(tasks), 1)
    # no label at the outer ring: it would sit beside the first spoke's task name (the ring is ``top``)
    ticks = [round(top * f, 6) for f in (0.0, 0.25, 0.5, 0.75)]
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, top], angle=between, tickangle=between, tickvals=ticks),
                                 angularaxis=dict(direction="counterclockwise", rotation=0)),
                      legend=dict(orientation="h", y=-0.12, yanchor="top", x=0.5, xanchor="center"))
    return fig
