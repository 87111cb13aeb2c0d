"""Figures of test-time adaptation (AdaRank, AdaMerging): the learned masks (AdaRank Fig. 5), kept rank per task
and layer, λ, and the traces. Builders take the tables of :mod:`spectral.adapt.tables` (or plain tensors) and
return ``go.Figure``; they never touch Streamlit."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from spectral.figures.style import task_color

#: kept / pruned colours of the mask images (AdaRank Fig. 5 draws kept components dark)
KEPT_COLOR = "#1f3b73"
PRUNED_COLOR = "#e8e8e8"
#: with ``show_changes``: components the adaptation switched on (kept now, pruned initially) or off
TURNED_ON_COLOR = "#2ca02c"
TURNED_OFF_COLOR = "#d62728"


def _mask_grid(mask: Any, initial: Any | None, show_changes: bool) -> list[list[int]]:
    """0 pruned, 1 kept; with changes: 2 switched on, 3 switched off."""
    m = [[int(v) for v in row] for row in mask.tolist()]
    if not show_changes or initial is None:
        return m
    init = initial.tolist()
    return [[(1 if a else 0) if bool(a) == bool(b) else (2 if a else 3) for a, b in zip(row, irow)]
            for row, irow in zip(m, init)]


def _mask_colorscale(show_changes: bool) -> list[list[Any]]:
    colors = [PRUNED_COLOR, KEPT_COLOR] + ([TURNED_ON_COLOR, TURNED_OFF_COLOR] if show_changes else [])
    n = len(colors)
    scale: list[list[Any]] = []
    for i, c in enumerate(colors):
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale


def mask_figure(
    masks: Mapping[str, Any],
    task_names: Sequence[str],
    *,
    layers: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    initial: Mapping[str, Any] | None = None,
    show_changes: bool = False,
    columns: int = 2,
    max_components: int | None = None,
) -> go.Figure:
    """Mask images, one panel per layer: tasks (rows) × singular-component index (columns, descending σ), kept
    versus pruned (AdaRank Fig. 5). ``masks[key]`` is a (T, r) bool/0-1 tensor; ``initial`` the starting masks,
    used with ``show_changes`` to colour components switched on or off by the adaptation."""
    keys = list(layers) if layers is not None else list(masks)
    if not keys:
        fig = go.Figure()
        fig.add_annotation(text="no masked layers (AdaMerging learns only λ)", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    labels = labels or {}
    columns = max(1, min(columns, len(keys)))
    rows = math.ceil(len(keys) / columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[labels.get(k, k) for k in keys],
                        vertical_spacing=min(0.2, 0.8 / max(rows, 1)), horizontal_spacing=0.06)
    n_states = 4 if (show_changes and initial is not None) else 2
    for i, key in enumerate(keys):
        mask = masks[key]
        init = initial.get(key) if initial is not None else None
        if max_components is not None:
            mask = mask[:, :max_components]
            init = init[:, :max_components] if init is not None else None
        z = _mask_grid(mask, init, show_changes)
        fig.add_trace(
            go.Heatmap(
                z=z, x=list(range(len(z[0]) if z else 0)), y=list(task_names), zmin=-0.5, zmax=n_states - 0.5,
                colorscale=_mask_colorscale(n_states == 4), showscale=False, xgap=0, ygap=1,
                hovertemplate="%{y}, component %{x}: %{customdata}<extra>" + labels.get(key, key) + "</extra>",
                customdata=[[["pruned", "kept", "switched on", "switched off"][v] for v in row] for row in z],
                name=labels.get(key, key),
            ),
            row=i // columns + 1, col=i % columns + 1,
        )
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9))
    fig.update_xaxes(title_font=dict(size=10), tickfont=dict(size=9))
    fig.update_xaxes(title_text="component index", row=rows)  # bottom row only: above, it would meet the titles
    fig.update_layout(height=max(260, 170 * rows + 60), margin=dict(t=50, l=10, r=10, b=10))
    legend = [("kept", KEPT_COLOR), ("pruned", PRUNED_COLOR)]
    if n_states == 4:
        legend += [("switched on", TURNED_ON_COLOR), ("switched off", TURNED_OFF_COLOR)]
    for name, color in legend:  # legend entries for the discrete colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 marker=dict(size=10, color=color, symbol="square")))
    fig.update_layout(legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1.0, xanchor="right"))
    return fig


def kept_rank_figure(table: pd.DataFrame, *, value: str = "fraction") -> go.Figure:
    """Kept rank per task (columns) and layer (rows) as a heatmap, from :func:`spectral.adapt.tables.kept_rank_table`;
    ``value`` is "fraction" (kept / r) or "kept" (count). Hover shows both and the initial count."""
    if table.empty:
        fig = go.Figure()
        fig.add_annotation(text="no masked layers", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    layers = list(dict.fromkeys(table.label))
    tasks = list(dict.fromkeys(table.task))
    pivot = table.pivot_table(index="label", columns="task", values=value, sort=False).reindex(index=layers,
                                                                                                 columns=tasks)
    kept = table.pivot_table(index="label", columns="task", values="kept", sort=False).reindex(index=layers,
                                                                                                columns=tasks)
    init = table.pivot_table(index="label", columns="task", values="initial", sort=False).reindex(index=layers,
                                                                                                   columns=tasks)
    rank = table.groupby("label", sort=False)["rank"].first().reindex(layers)
    custom = [[[int(kept.iloc[i, j]), int(init.iloc[i, j]), int(rank.iloc[i])] for j in range(len(tasks))]
              for i in range(len(layers))]
    fig = go.Figure(go.Heatmap(
        z=pivot.values, x=tasks, y=layers, colorscale="Viridis",
        zmin=0.0 if value == "fraction" else None, zmax=1.0 if value == "fraction" else None,
        customdata=custom, colorbar=dict(title="kept / r" if value == "fraction" else "kept"),
        hovertemplate="%{y}, %{x}: kept %{customdata[0]} of %{customdata[2]} (initially %{customdata[1]})"
                      "<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="layer")
    fig.update_xaxes(title_text="task")
    fig.update_layout(height=max(300, 16 * len(layers) + 120), margin=dict(t=30, l=10, r=10, b=10))
    return fig


def kept_rank_lines_figure(table: pd.DataFrame, *, kind: str | None = None) -> go.Figure:
    """Kept fraction across layers, one line per task (optionally one layer kind, e.g. "in_proj")."""
    sel = table if kind is None else table[table.kind == kind]
    fig = go.Figure()
    for i, (task, rows) in enumerate(sel.groupby("task", sort=False)):
        fig.add_trace(go.Scatter(x=list(rows.label), y=list(rows.fraction), mode="lines+markers", name=str(task),
                                 line=dict(color=task_color(i)),
                                 hovertemplate="%{x}: %{y:.2f}<extra>" + str(task) + "</extra>"))
    fig.update_yaxes(title_text="kept / r", range=[0, 1.02])
    fig.update_xaxes(title_text="layer")
    return fig


def lambda_figure(table: pd.DataFrame) -> go.Figure:
    """Learned λ per parameter tensor (rows) and task (columns), from :func:`spectral.adapt.tables.lambda_table`."""
    layers = list(dict.fromkeys(table.label))
    tasks = list(dict.fromkeys(table.task))
    pivot = table.pivot_table(index="label", columns="task", values="lambda", sort=False).reindex(index=layers,
                                                                                                   columns=tasks)
    fig = go.Figure(go.Heatmap(z=pivot.values, x=tasks, y=layers, colorscale="RdBu", zmid=0.0,
                               colorbar=dict(title="λ"),
                               hovertemplate="%{y}, %{x}: λ = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(300, 12 * len(layers) + 120), margin=dict(t=30, l=10, r=10, b=10))
    return fig


def entropy_trace_figure(traces: Mapping[str, Any], *, selected_step: int | None = None,
                         per_task: bool = False) -> go.Figure:
    """The unlabelled objective: training entropy per step (Σ over tasks, or per task) and the entropy on the
    fixed selection images; a vertical line marks the selected step."""
    fig = go.Figure()
    if per_task:
        for i, (task, values) in enumerate(traces["task_entropy"].items()):
            fig.add_trace(go.Scatter(x=traces["step"], y=values, mode="lines", name=task,
                                     line=dict(color=task_color(i), width=1.2)))
    else:
        fig.add_trace(go.Scatter(x=traces["step"], y=traces["entropy"], mode="lines",
                                 name="training batch entropy (Σ tasks)", line=dict(color="#9aa5b1", width=1)))
    fig.add_trace(go.Scatter(x=traces["select_step"], y=traces["select_entropy"], mode="lines+markers",
                             name="selection-set entropy (Σ tasks)", line=dict(color="#1f3b73", width=2),
                             marker=dict(size=5)))
    if selected_step is not None:
        fig.add_vline(x=selected_step, line=dict(color="#d62728", dash="dash", width=1.5),
                      annotation_text=f"selected: step {selected_step}", annotation_position="top right")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="entropy (nats)")
    fig.update_layout(legend=dict(orientation="h", y=-0.2, yanchor="top", x=0.5, xanchor="center"),
                      margin=dict(t=30, l=10, r=10, b=10))
    return fig


def accuracy_trace_figure(traces: Mapping[str, Any], *, selected_step: int | None = None) -> go.Figure:
    """Test accuracy per task and mean over steps. It uses the test labels: shown for reference only — the
    selection never reads it (the title says so)."""
    fig = go.Figure()
    steps = traces.get("acc_step", [])
    accs = traces.get("test_accuracy", {})
    for i, (task, values) in enumerate(accs.items()):
        if values:
            fig.add_trace(go.Scatter(x=steps, y=[100 * v for v in values], mode="lines+markers", name=task,
                                     line=dict(color=task_color(i), width=1.2), marker=dict(size=4)))
    if steps and accs:
        mean = [100 * sum(v[j] for v in accs.values()) / len(accs) for j in range(len(steps))]
        fig.add_trace(go.Scatter(x=steps, y=mean, mode="lines+markers", name="mean",
                                 line=dict(color="#222222", width=2.5)))
    if selected_step is not None:
        fig.add_vline(x=selected_step, line=dict(color="#d62728", dash="dash", width=1.5))
    fig.update_layout(title=dict(text="Test accuracy — uses labels, for reference only (never used to select)",
                                 font=dict(size=13)),
                      legend=dict(orientation="h", y=-0.2, yanchor="top", x=0.5, xanchor="center"),
                      margin=dict(t=50, l=10, r=10, b=10))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="accuracy (%)")
    return fig
