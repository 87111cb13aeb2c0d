"""Shared colours and small helpers of the figure builders (no template: on screen the app's theme applies)."""
from __future__ import annotations

import plotly.colors as pc

#: fixed colours of the merges and reference models, so a method looks the same on every page
MODEL_COLORS: dict[str, str] = {
    "Zero-shot": "#7f7f7f",
    "Fine-tuned": "#222222",
    "Weight Averaging": "#bcbd22",
    "Task Arithmetic": "#8c564b",
    "TIES": "#e377c2",
    "Consensus TA": "#17becf",
    "TSV-M": "#d62728",
    "TSV low-rank only": "#ff9896",
    "Iso-C": "#1f77b4",
    "Iso-CTS": "#2ca02c",
    "CART": "#9467bd",
    "TSV-C (compression)": "#ff7f0e",
    "TSV-C": "#ff7f0e",
    # test-time adaptation (AdaRank, AdaMerging): drawn dash-dotted, see model_dash
    "TA+AdaRank": "#e6550d",
    "CART+AdaRank": "#6b6ecf",
    "TA+AdaMerging (task-wise)": "#8c6d31",
    "TA+AdaMerging (layer-wise)": "#bd9e39",
    "CART+AdaMerging (task-wise)": "#843c39",
    "CART+AdaMerging (layer-wise)": "#d6616b",
}
MODEL_DASH: dict[str, str] = {"Zero-shot": "dot", "Fine-tuned": "dash"}
TASK_PALETTE: list[str] = pc.qualitative.D3 + pc.qualitative.Set2 + pc.qualitative.Pastel1


def model_color(name: str, fallback_index: int = 0) -> str:
    """A model's fixed colour; a stored result's " · run, steps" suffix is ignored, so every run of a method shares
    it (and the dash tells them apart from the static merges)."""
    fallback = pc.qualitative.Dark24[fallback_index % len(pc.qualitative.Dark24)]
    return MODEL_COLORS.get(name, MODEL_COLORS.get(name.split(" · ")[0], fallback))


def model_dash(name: str) -> str:
    """Line style of a model: dotted zero-shot, dashed fine-tuned, dash-dotted test-time adaptation (it saw
    unlabelled test images, unlike the static merges), solid otherwise."""
    if name in MODEL_DASH:
        return MODEL_DASH[name]
    return "dashdot" if ("+AdaRank" in name or "+AdaMerging" in name) else "solid"


def task_color(index: int) -> str:
    return TASK_PALETTE[index % len(TASK_PALETTE)]


def heat_text(values, digits: int = 2, limit: int = 15):
    """Cell labels for a small heatmap (None when the matrix is too large to label)."""
    if len(values) > limit:
        return None
    return [[("" if v != v else f"{v:.{digits}f}") for v in row] for row in values]
