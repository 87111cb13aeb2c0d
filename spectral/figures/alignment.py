"""Alignment figures (Iso, Marczak et al. 2025): pairwise SAR_avg (Fig. 3b) and SAR_avg against NAI (Fig. 3a)."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from spectral.figures.style import SEQUENTIAL, data_range, heat_text, merge_style, missing_cells_traces

#: points labelled with their task name only up to this many (beyond, the labels cover each other: hover)
MAX_POINT_LABELS = 12


def sar_matrix_figure(matrix: pd.DataFrame) -> go.Figure:
    """SAR_avg(Δ_i, Δ_j; k_TA): rows = source task i, columns = target task j (Iso Fig. 3b). The colour range is
    the off-diagonal values' own (the diagonal is 1 by definition and drawn in the top colour); missing pairs grey."""
    names = [str(c) for c in matrix.columns]
    rows = [str(i) for i in matrix.index]
    values = matrix.to_numpy(dtype=float)
    off = values.copy()
    if off.shape[0] == off.shape[1] and off.shape[0] > 1:
        off[np.eye(off.shape[0], dtype=bool)] = np.nan
    lo, hi = data_range(off) or (0.0, 1.0)
    fig = go.Figure(missing_cells_traces(values, names, rows))
    fig.add_trace(go.Heatmap(
        z=values, x=names, y=rows, zmin=lo, zmax=hi, colorscale=SEQUENTIAL,
        text=heat_text(values.tolist()), texttemplate="%{text}" if len(names) <= 15 else None,
        colorbar=dict(title="SAR_avg"), hovertemplate="source %{y} → target %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="source task", scaleanchor="x", constrain="domain")
    fig.update_xaxes(title_text="target task", tickangle=-45, constrain="domain")
    return fig


def sar_nai_figure(points: pd.DataFrame, correlation: Mapping[str, float]) -> go.Figure:
    """NAI(θ_M, θ_t; θ_0) against SAR_avg(Δ_t, Δ_M) per task and merge, Pearson's ρ in the legend (Iso Fig. 3a)."""
    fig = go.Figure()
    labelled = len(points) <= MAX_POINT_LABELS
    for i, (model, sel) in enumerate(points.groupby("model", sort=False)):
        rho = correlation.get(str(model), math.nan)
        label = f"{model} (ρ = {rho:.2f})" if rho == rho else f"{model} (ρ undefined)"
        fig.add_trace(go.Scatter(
            x=sel.sar_avg, y=sel.nai, mode="markers+text" if labelled else "markers", text=sel.task,
            textposition="top center", textfont=dict(size=9), name=label,
            marker=merge_style(str(model), i).marker(9),
            hovertemplate="%{text}: SAR_avg %{x:.3f}, NAI %{y:.3f}<extra></extra>",
        ))
    fig.update_xaxes(title_text="SAR_avg(Δₜ, Δ_M)")
    fig.update_yaxes(title_text="NAI")
    fig.update_layout(legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return fig
