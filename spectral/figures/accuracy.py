"""Accuracy figures: per-dataset radar of merged models with zero-shot and fine-tuned (TSV Fig. 4)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_DASH, model_color, model_dash


def radar_figure(table: pd.DataFrame, *, value: str = "accuracy") -> go.Figure:
    """One closed polygon per model over the tasks; ``table``: :func:`spectral.analysis.accuracy_table`. Rows
    that are subsample estimates (``subsample`` > 0, :func:`spectral.analysis.with_intervals`) get radial error
    bars of their 95 % Wilson interval (absolute accuracy only), one trace per model named "<model> 95% CI"."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(table.task))
    estimates = value == "accuracy" and "subsample" in table and bool((table.subsample > 0).any())
    for i, (model, sel) in enumerate(table.groupby("model", sort=False)):
        sel = sel.set_index("task").reindex(tasks)
        r = list(sel[value]) + [sel[value].iloc[0]]
        color = model_color(str(model), i)
        fig.add_trace(go.Scatterpolar(
            r=r, theta=tasks + [tasks[0]], mode="lines+markers", name=str(model), legendgroup=str(model),
            line=dict(color=color, dash=model_dash(str(model)), width=1.5 if model in MODEL_DASH else 2.5),
            marker=dict(size=4),
            hovertemplate="%{theta}: %{r:.1f}<extra>" + str(model) + "</extra>",
        ))
        if estimates and (sel.subsample > 0).any():
            bar_r: list[float | None] = []
            bar_theta: list[str | None] = []
            for task, row in sel.iterrows():
                if row.subsample > 0:
                    bar_r += [float(row.lo), float(row.hi), None]
                    bar_theta += [str(task), str(task), None]
            fig.add_trace(go.Scatterpolar(
                r=bar_r, theta=bar_theta, mode="lines", name=f"{model} 95% CI", legendgroup=str(model),
                showlegend=False, line=dict(color=color, width=5), opacity=0.35, hoverinfo="skip",
            ))
    top = 100.0 if value == "accuracy" else max(1.0, float(table[value].max()))
    fig.update_layout(polar=dict(radialaxis=dict(range=[0, top], angle=90, tickangle=90)),
                      legend=dict(orientation="h", y=-0.12, yanchor="top", x=0.5, xanchor="center"))
    return fig
