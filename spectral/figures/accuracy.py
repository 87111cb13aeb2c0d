"""Accuracy figures: per-dataset radar of merged models with zero-shot and fine-tuned (TSV Fig. 4)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_WIDTH, is_reference, merge_style


def radar_figure(table: pd.DataFrame, *, value: str = "accuracy") -> go.Figure:
    """One closed polygon per model over the tasks; ``table``: :func:`spectral.analysis.accuracy_table`. Rows
    that are subsample estimates (``subsample`` > 0, :func:`spectral.analysis.with_intervals`) get radial error
    bars of their 95 % Wilson interval (absolute accuracy only), one trace per model named "<model> 95% CI"."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(table.task))
    # a task scored by another metric than accuracy (CoLA: Matthews correlation) says so on its spoke
    metric_of = dict(zip(table.task, table.metric)) if "metric" in table else {}
    spoke = {t: f"{t} ({metric_of[t].upper()})" if metric_of.get(t, "accuracy") != "accuracy" else t for t in tasks}
    estimates = value == "accuracy" and "subsample" in table and bool((table.subsample > 0).any())
    for i, (model, sel) in enumerate(table.groupby("model", sort=False)):
        sel = sel.set_index("task").reindex(tasks)
        r = list(sel[value]) + [sel[value].iloc[0]]
        color = merge_style(str(model), i).color
        fig.add_trace(go.Scatterpolar(
            r=r, theta=[spoke[t] for t in tasks + [tasks[0]]], mode="lines+markers", name=str(model), legendgroup=str(model),
            line=merge_style(str(model), i).line(1.5 if is_reference(str(model)) else MODEL_WIDTH - 0.5),
            marker=merge_style(str(model), i).marker(5),
            hovertemplate="%{theta}: %{r:.1f}<extra>" + str(model) + "</extra>",
        ))
        if estimates and (sel.subsample > 0).any():
            bar_r: list[float | None] = []
            bar_theta: list[str | None] = []
            for task, row in sel.iterrows():
                if row.subsample > 0:
                    bar_r += [float(row.lo), float(row.hi), None]
                    bar_theta += [spoke[task], spoke[task], None]
            fig.add_trace(go.Scatterpolar(
                r=bar_r, theta=bar_theta, mode="lines", name=f"{model} 95% CI", legendgroup=str(model),
                showlegend=False, line=dict(color=color, width=5), opacity=0.35, hoverinfo="skip",
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
