"""Spectrum figures: singular values of task matrices and merges (Iso Fig. 1, 7), cumulative energy and effective
rank (AdaRank Fig. 3), the TA → Iso-C interpolation (Iso Fig. 4a) and the layer × task effective-rank heatmap."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import MODEL_WIDTH, TASK_WIDTH, merge_style, missing_cells_traces, task_color


def spectra_figure(table: pd.DataFrame, *, log_y: bool = True, normalise: bool = False) -> go.Figure:
    """σ_i against i for each task (thin lines) and each merge (thick lines) of one layer.

    ``table``: :func:`spectral.analysis.layer_spectra`. ``normalise`` divides each spectrum by its σ₁.
    """
    fig = go.Figure()
    task_i = 0
    for (source, group), sel in table.groupby(["source", "group"], sort=False):
        y = sel.sigma / sel.sigma.iloc[0] if normalise and len(sel) and sel.sigma.iloc[0] > 0 else sel.sigma
        if group == "task":
            line = dict(color=task_color(task_i), width=TASK_WIDTH)
            task_i += 1
            opacity = 0.8
        else:
            line = merge_style(str(source)).line(MODEL_WIDTH)
            opacity = 1.0
        fig.add_trace(go.Scatter(x=sel["index"], y=y, mode="lines", name=str(source), line=line, opacity=opacity,
                                 legendgroup=group, legendgrouptitle_text="tasks" if group == "task" else "merges"))
    fig.update_xaxes(title_text="singular value index i")
    fig.update_yaxes(title_text=("σᵢ / σ₁" if normalise else "σᵢ"), type="log" if log_y else "linear",
                     exponentformat="power")
    return fig


def energy_figure(table: pd.DataFrame, *, energy: float = 0.95) -> go.Figure:
    """Cumulative energy Σ_{j≤i} σ_j² / Σ σ² per source, with the effective rank (first i reaching ``energy``)
    marked; ``table`` as :func:`spectral.analysis.layer_spectra` (computed with the same ``energy``)."""
    fig = go.Figure()
    task_i = 0
    for (source, group), sel in table.groupby(["source", "group"], sort=False):
        if group == "task":
            line = dict(color=task_color(task_i), width=TASK_WIDTH)
            task_i += 1
        else:
            line = merge_style(str(source)).line(MODEL_WIDTH)
        color = line["color"]
        k = int(sel.effective_rank.iloc[0]) if len(sel) else 0
        fig.add_trace(go.Scatter(x=sel["index"], y=sel.energy, mode="lines", name=f"{source} (k={k})",
                                 line=line, legendgroup=group))
        if k > 0:
            fig.add_trace(go.Scatter(x=[k], y=[float(sel.energy.iloc[k - 1])], mode="markers", showlegend=False,
                                     marker=dict(color=color, size=7, symbol="diamond"), legendgroup=group,
                                     hovertemplate=f"{source}: effective rank {k}<extra></extra>"))
    fig.add_hline(y=energy, line=dict(color="gray", dash="dot", width=1))
    fig.update_xaxes(title_text="number of singular components k")
    fig.update_yaxes(title_text="cumulative energy", range=[0, 1.02])
    return fig


def interpolation_figure(table: pd.DataFrame, *, beta: float | None = None, log_y: bool = True) -> go.Figure:
    """Σ_β = (1 − β) Σ_TA + β Σ_Iso-C for each β in ``table`` (Iso Eq. 15, Fig. 4a), k_M as dashed lines;
    the slider's β (``beta``) drawn thick. ``table``: :func:`spectral.analysis.interpolation`."""
    fig = go.Figure()
    betas = sorted(table.beta.unique())
    for b in betas:
        sel = table[table.beta == b]
        t = 0.0 if len(betas) == 1 else (b - min(betas)) / (max(betas) - min(betas) or 1.0)
        color = f"rgb({int(140 * (1 - t) + 31 * t)},{int(86 * (1 - t) + 119 * t)},{int(75 * (1 - t) + 180 * t)})"
        chosen = beta is not None and abs(b - beta) < 1e-9
        k = int(sel.k_M.iloc[0])
        fig.add_trace(go.Scatter(x=sel["index"], y=sel.sigma, mode="lines", name=f"β = {b:g} (k_M = {k})",
                                 line=dict(color=color, width=3.5 if chosen else 1.5)))
        fig.add_vline(x=k, line=dict(color=color, dash="dash", width=1.5 if chosen else 1))
    fig.update_xaxes(title_text="singular value index i")
    fig.update_yaxes(title_text="σᵢ of Δ_β", type="log" if log_y else "linear", exponentformat="power")
    return fig


def effective_rank_heatmap(table: pd.DataFrame, *, value: str = "fraction") -> go.Figure:
    """Layer × task heatmap of the effective rank (``value="effective_rank"``) or its fraction of r.

    ``table``: :func:`spectral.analysis.effective_rank_table`.
    """
    grid = table.pivot(index="label", columns="task", values=value)
    grid = grid.reindex(index=list(dict.fromkeys(table.label)), columns=list(dict.fromkeys(table.task)))
    x, y = [str(c) for c in grid.columns], list(grid.index)
    fig = go.Figure(missing_cells_traces(grid.to_numpy(dtype=float), x, y))
    fig.add_trace(go.Heatmap(
        z=grid.to_numpy(), x=x, y=y, colorscale="Viridis",
        colorbar=dict(title="k / r" if value == "fraction" else "k"),
        hovertemplate="%{y} · %{x}: %{z}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="layer")
    fig.update_xaxes(tickangle=-45, title_text="task")
    return fig
