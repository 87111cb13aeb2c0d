"""Over-accumulation view (SVC, Li et al. 2026): the heatmap of s_r^t (tasks × leading directions of a layer's merge)
and the merge's spectrum before and after Singular Value Calibration. Builders take tables, never app state."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from spectral.figures.style import heat_text, model_color


def coefficient_heatmap(table: pd.DataFrame, *, svc_alpha: float = 1.0) -> go.Figure:
    """Heatmap of s_r^t (SVC Eq. 8) from :func:`spectral.metrics.overaccumulation.coefficient_table`: how many times
    task t's response along u_r is counted in the merge. Values above the floor ``svc_alpha`` are over-counted;
    the colour scale is centred on it."""
    grid = table.pivot(index="task", columns="component", values="s")
    grid = grid.reindex(index=list(dict.fromkeys(table.task)))
    z = grid.to_numpy()
    span = max(abs(float(pd.Series(z.ravel()).max()) - svc_alpha), abs(float(pd.Series(z.ravel()).min()) - svc_alpha),
               1e-12)
    fig = go.Figure(go.Heatmap(
        z=z, x=[int(c) for c in grid.columns], y=list(grid.index), colorscale="RdBu_r", zmid=svc_alpha,
        zmin=svc_alpha - span, zmax=svc_alpha + span, text=heat_text(z.tolist(), 1, limit=10),
        texttemplate="%{text}" if len(grid.columns) <= 16 and len(grid.index) <= 10 else None,
        colorbar=dict(title="s<sub>r</sub><sup>t</sup>"),
        hovertemplate="task %{y} · direction %{x}: s = %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title_text="singular direction r of the merge")
    fig.update_yaxes(title_text="task", autorange="reversed")
    return fig


def calibrated_spectrum_figure(table: pd.DataFrame, *, log_y: bool = True, label: str = "merge") -> go.Figure:
    """σ_r of the merge before and after calibration (γ_r σ_r) on top, γ_r below (shared r axis), from
    :func:`spectral.metrics.overaccumulation.spectrum_table`."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    color = model_color(label)
    for which, dash, width in (("before", "dot", 1.5), ("after", "solid", 2.5)):
        sel = table[table.which == which]
        fig.add_trace(go.Scatter(x=sel["index"], y=sel.sigma, mode="lines", line=dict(color=color, dash=dash,
                                 width=width), name=f"{label} {'(SVC)' if which == 'after' else '(base)'}"),
                      row=1, col=1)
    sel = table[table.which == "before"]
    fig.add_trace(go.Scatter(x=sel["index"], y=sel.gamma, mode="lines", name="γ_r", line=dict(color="gray", width=1.5)),
                  row=2, col=1)
    fig.add_hline(y=1.0, line=dict(color="gray", dash="dot", width=1), row=2, col=1)
    fig.update_yaxes(title_text="σ<sub>r</sub>", type="log" if log_y else "linear", exponentformat="power",
                     row=1, col=1)
    fig.update_yaxes(title_text="γ<sub>r</sub>", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="singular value index r", row=2, col=1)
    return fig
