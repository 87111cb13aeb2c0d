"""Interference figures (TSV, Gargiulo et al. 2025): STI per layer (Fig. 6, 14), the UᵀU / VᵀV block similarity
of one layer with task boundaries (Fig. 3) and its zoom on one task pair, STI before and after TSV-M (Fig. 8)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from spectral.figures.style import SEQUENTIAL, heat_text, merge_style, missing_cells_traces, spans_decades


def sti_heatmap(grid: pd.DataFrame, *, log_z: bool = False) -> go.Figure:
    """STI (TSV Eq. 6, un-normalised) as a layer × kind heatmap; ``grid``: :func:`spectral.analysis.sti_grid`."""
    values = grid.to_numpy(dtype=float)
    z = np.log10(np.where(values > 0, values, np.nan)) if log_z else values
    x, y = [str(c) for c in grid.columns], [str(i) for i in grid.index]
    fig = go.Figure(missing_cells_traces(z, x, y))  # a kind the layer lacks is no value, not zero
    fig.add_trace(go.Heatmap(
        z=z, x=x, y=y, colorscale="Reds",
        colorbar=dict(title="log₁₀ STI" if log_z else "STI"), customdata=values,
        hovertemplate="%{y} · %{x}: STI %{customdata:.4g}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="layer")
    fig.update_xaxes(title_text="layer kind")
    return fig


def _boundary_shapes(boundaries: list[int], xref: str, yref: str) -> list[dict]:
    shapes = []
    for a, b in zip(boundaries[:-1], boundaries[1:]):
        shapes.append(dict(type="rect", xref=xref, yref=yref, x0=a - 0.5, x1=b - 0.5, y0=a - 0.5, y1=b - 0.5,
                           line=dict(color="black", width=1), fillcolor="rgba(0,0,0,0)"))
    n = boundaries[-1]
    for edge in boundaries[1:-1]:
        for axis in ("x", "y"):
            coords = dict(x0=edge - 0.5, x1=edge - 0.5, y0=-0.5, y1=n - 0.5) if axis == "x" else \
                dict(x0=-0.5, x1=n - 0.5, y0=edge - 0.5, y1=edge - 0.5)
            shapes.append(dict(type="line", xref=xref, yref=yref, line=dict(color="rgba(0,0,0,0.35)", width=0.5),
                               **coords))
    return shapes


def sti_blocks_figure(blocks: pd.DataFrame, *, tasks: list[str], k: int,
                      pair: tuple[str, str] | None = None) -> go.Figure:
    """|UᵀU| and |VᵀV| of the concatenated top-k task singular vectors side by side (TSV Fig. 3), task blocks
    outlined (diagonal blocks are identities; off-diagonal blocks are the inter-task overlaps; singular vectors
    are defined up to sign, so magnitudes are shown). ``pair`` outlines the zoomed block in red.

    ``blocks``: :func:`spectral.analysis.sti_block_matrices` (long: matrix, row, col, value).
    """
    size = len(tasks) * k
    fig = make_subplots(rows=1, cols=2, subplot_titles=("|UᵀU|", "|VᵀV|"), horizontal_spacing=0.08)
    centres = [t * k + (k - 1) / 2 for t in range(len(tasks))]
    boundaries = [t * k for t in range(len(tasks) + 1)]
    for col, name in enumerate(("UᵀU", "VᵀV"), start=1):
        sel = blocks[blocks.matrix == name]
        mat = np.zeros((size, size))
        mat[sel.row.to_numpy(), sel.col.to_numpy()] = np.abs(sel.value.to_numpy())
        fig.add_trace(go.Heatmap(z=mat, zmin=0, zmax=1, colorscale="Viridis", showscale=(col == 2),
                                 colorbar=dict(title="|·|"), hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"),
                      row=1, col=col)
        xref, yref = ("x", "y") if col == 1 else ("x2", "y2")
        for shape in _boundary_shapes(boundaries, xref, yref):
            fig.add_shape(**shape)
        if pair is not None and pair[0] in tasks and pair[1] in tasks:
            a, b = tasks.index(pair[0]), tasks.index(pair[1])
            fig.add_shape(type="rect", xref=xref, yref=yref, x0=b * k - 0.5, x1=(b + 1) * k - 0.5,
                          y0=a * k - 0.5, y1=(a + 1) * k - 0.5, line=dict(color="red", width=2),
                          fillcolor="rgba(0,0,0,0)")
        fig.update_xaxes(tickvals=centres, ticktext=tasks, tickangle=-60, range=[-0.5, size - 0.5],
                         constrain="domain", row=1, col=col)
        fig.update_yaxes(tickvals=centres, ticktext=tasks if col == 1 else [""] * len(tasks),
                         range=[size - 0.5, -0.5], scaleanchor=xref, constrain="domain", row=1, col=col)
    return fig


def sti_zoom_figure(block: pd.DataFrame, *, matrix: str = "VᵀV") -> go.Figure:
    """Magnitudes of one k × k off-diagonal block (TSV Fig. 3 zoom); ``block``: :func:`spectral.analysis.block_pair`."""
    values = np.abs(block.to_numpy(dtype=float))
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0  # the block's own range, from 0
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(c) for c in block.columns], y=[str(i) for i in block.index], zmin=0, zmax=top,
        colorscale=SEQUENTIAL, colorbar=dict(title=f"|{matrix}|"), text=heat_text(values.tolist(), 2, 12),
        texttemplate="%{text}" if values.shape[0] <= 12 else None,
        hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(tickangle=-60, constrain="domain")
    return fig


def sti_before_after_figure(table: pd.DataFrame) -> go.Figure:
    """STI per transformer block (summed over its matrices) before and after TSV-M's orthogonalisation (TSV Fig. 8);
    ``table``: :func:`spectral.analysis.sti_before_after`."""
    grouped = table.assign(group=[("block " + str(b)) if b >= 0 else lbl for b, lbl in zip(table.block, table.label)])
    order = list(dict.fromkeys(grouped.group))
    sums = grouped.groupby("group", sort=False)[["before", "after"]].sum().reindex(order)
    fig = go.Figure([
        go.Bar(x=order, y=sums.before, name=f"task matrices (Σ = {sums.before.sum():.3g})", marker_color="#777777"),
        go.Bar(x=order, y=sums.after, name=f"after TSV-M (Σ = {sums.after.sum():.3g})",
               marker_color=merge_style("tsv_m").color),
    ])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    # after TSV-M the interference is ~1e-13 of before: only a log axis shows both
    log = spans_decades(list(sums.before) + list(sums.after))
    fig.update_yaxes(title_text="STI (sum over the block's matrices)", type="log" if log else "linear",
                     exponentformat="power")
    fig.update_xaxes(tickangle=-45)
    return fig
