"""Captions that state a finding, computed from the figure's data (issue 29).

A caption such as "interference is highest in early layers" is what a paper found on its models; a user's pool can
show the opposite. These functions say what the paper found and what the data on screen shows, in one sentence
each, so the caption never contradicts the figure beside it. Pure functions of the figure's data (no Streamlit).
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

#: |Pearson's r| below this is reported as "no clear relation"
CLEAR_R = 0.3


def _where(position: float) -> str:
    """Position of a block among the blocks (0 = first, 1 = last) as early / middle / late."""
    if position < 1 / 3:
        return "early"
    if position > 2 / 3:
        return "late"
    return "middle"


def sti_layers_caption(per_layer: pd.DataFrame) -> str:
    """TSV Fig. 6 / 14's finding (interference highest in early layers) against the per-layer STI on screen.

    ``per_layer`` is :func:`spectral.analysis.sti_per_layer`'s table (columns ``sti``, ``block`` (−1 outside the
    transformer blocks), ``label``). The sentence names the highest layer and the block whose layers sum to the
    most STI, and whether that block is early, middle or late among the blocks.
    """
    paper = "TSV (Fig. 6, 14) found interference highest in the early layers of its ViTs."
    finite = per_layer[per_layer.sti.map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    if finite.empty:
        return f"{paper} This pool has no finite STI to compare."
    top = finite.loc[finite.sti.idxmax()]
    text = f"{paper} On this pool the highest layer is {top['label']} (STI {float(top['sti']):.3g})"
    blocks = finite[finite.block >= 0]
    if blocks.empty or blocks.block.nunique() < 2:
        return text + "."
    per_block = blocks.groupby("block").sti.sum()
    order = sorted(per_block.index)
    peak = int(per_block.idxmax())
    where = _where(order.index(peak) / (len(order) - 1))
    verdict = "as in the paper" if where == "early" else "unlike the paper"
    article = "an" if where == "early" else "a"
    return (f"{text}; summed per block, STI peaks in block {peak} of {order[0]}–{order[-1]}, "
            f"{article} {where} block ({verdict}).")


def alignment_caption(pearson_r: Mapping[str, float | None]) -> str:
    """Iso Fig. 3a's finding (better-aligned tasks gain more: SAR_avg and NAI correlate positively) against the
    Pearson's r of each merge on screen."""
    paper = ("Iso (Fig. 3a) found that tasks better aligned with the merged model gain more: SAR_avg and NAI "
             "(Iso Eq. 4) correlate positively.")
    if not pearson_r:
        return paper
    parts = []
    for model, r in pearson_r.items():
        if r is None or (isinstance(r, float) and math.isnan(r)):
            parts.append(f"{model}: r undefined (too few tasks or no spread)")
        elif r >= CLEAR_R:
            parts.append(f"{model}: r = {r:.2f}, as in the paper")
        elif r <= -CLEAR_R:
            parts.append(f"{model}: r = {r:.2f}, the opposite")
        else:
            parts.append(f"{model}: r = {r:.2f}, no clear relation")
    return f"{paper} On this pool, {'; '.join(parts)}."


__all__ = ["CLEAR_R", "alignment_caption", "sti_layers_caption"]
