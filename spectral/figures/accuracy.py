"""Accuracy figures: per-dataset radar of merged models with zero-shot and fine-tuned (TSV Fig. 4)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_WIDTH, is_reference, merge_style

#: how a spoke names a task's metric when it is not accuracy
METRIC_LABELS = {"mcc": "MCC", "normalised": "loss, normalised"}


def radar_figure(table: pd.DataFrame, *, value: str = "accuracy") -> go.Figure:
    """One closed polygon per model over the tasks; ``table``: :func:`spectral.analysis.accuracy_table`. Rows
    that are subsample estimates (``subsample`` > 0, :func:`spectral.analysis.with_intervals`) get radial error
    bars of their 95 % Wilson interval (absolute accuracy only), one trace per model named "<model> 95% CI".

    A task whose metric is not accuracy says so on its spoke ("CoLA (MCC)", "math (loss, normalised)"). The radial
    axis runs from 0 to 100 for accuracies; a normalised token-loss score (base 0, fine-tune 100) or an MCC may be
    negative or above 100, and the axis then widens to show every value (its lower end is then the centre)."""
    fig = go.Figure()
    tasks = list(dict.fromkeys(table.task))
    # a task scored by another metric than accuracy (CoLA: Matthews correlation) says so on its spoke
    metric_of = dict(zip(table.task, table.metric)) if "metric" in table else {}
    spoke = {t: f"{t} ({METRIC_LABELS.get(metric_of[t], metric_of[t].upper())})"
             if metric_of.get(t, "accuracy") != "accuracy" else t for t in tasks}
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
    shown = pd.to_numeric(table[value], errors="coerce")
    if estimates and "lo" in table:
        shown = pd.concat([shown, pd.to_numeric(table.lo, errors="coerce"), pd.to_numeric(table.hi, errors="coerce")])
    high = float(shown.max()) if shown.notna().any() else 0.0
    low = float(shown.min()) if shown.notna().any() else 0.0
    top = max(100.0, high) if value == "accuracy" else max(1.0, high)
    # scores below 0 (a merge worse than the base on a token-loss task, a negative MCC) widen the axis inwards
    bottom = min(0.0, low)
    # the radial tick labels run between the first two spokes, never over a spoke or its task label
    between = 180.0 / max(len(tasks), 1)
    # no label at the outer ring: it would sit beside the first spoke's task name (the ring is ``top``)
    ticks = [round(bottom + (top - bottom) * f, 6) for f in (0.0, 0.25, 0.5, 0.75)]
    fig.update_layout(polar=dict(radialaxis=dict(range=[bottom, top], angle=between, tickangle=between,
                                                 tickvals=ticks),
                                 angularaxis=dict(direction="counterclockwise", rotation=0)),
                      legend=dict(orientation="h", y=-0.12, yanchor="top", x=0.5, xanchor="center"))
    return fig
