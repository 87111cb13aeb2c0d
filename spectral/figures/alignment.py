"""Alignment figures (Iso, Marczak et al. 2025): pairwise SAR_avg (Fig. 3b) and SAR_avg against NAI (Fig. 3a)."""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import heat_text, model_color

SYMBOLS = ("star", "circle", "diamond", "square", "triangle-up", "x")


def sar_matrix_figure(matrix: pd.DataFrame) -> go.Figure:
    """SAR_avg(Δ_i, Δ_j; k_TA): rows = source task i, columns = target task j (Iso Fig. 3b)."""
    names = [str(c) for c in matrix.columns]
    values = matrix.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(
        z=values, x=names, y=[str(i) for i in matrix.index], zmin=0, zmax=1, colorscale="Viridis",
        text=heat_text(values.tolist()), texttemplate="%{text}" if len(names) <= 15 else None,
        colorbar=dict(title="SAR_avg"), hovertemplate="source %{y} → target %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="source task", scaleanchor="x", constrain="domain")
    fig.update_xaxes(title_text="target task", tickangle=-45, constrain="domain")
    return fig


def sar_nai_figure(points: pd.DataFrame, correlation: Mapping[str, float]) -> go.Figure:
    """NAI(θ_M, θ_t; θ_0) against SAR_avg(Δ_t, Δ_M) per task and merge, Pearson's ρ in the legend (Iso Fig. 3a)."""
    fig = go.Figure()
    for i, (model, sel) in enumerate(points.groupby("model", sort=False)):
        rho = correlation.get(str(model), math.nan)
        label = f"{model} (ρ = {rho:.2f})" if rho == rho else f"{model} (ρ undefined)"
        fig.add_trace(go.Scatter(
            x=sel.sar_avg, y=sel.nai, mode="markers+text", text=sel.task, textposition="top center",
            textfont=dict(size=9), name=label,
            marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)], size=11, color=model_color(str(model), i)),
            hovertemplate="%{text}: SAR_avg %{x:.3f}, NAI %{y:.3f}<extra></extra>",
        ))
    fig.update_xaxes(title_text="SAR_avg(Δₜ, Δ_M)")
    fig.update_yaxes(title_text="NAI")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig
