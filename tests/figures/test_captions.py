"""Finding captions follow the data they describe (issue 29): the same function says "as in the paper" or
"unlike the paper" / "the opposite" when the data flips."""
from __future__ import annotations

import math

import pandas as pd

from spectral.figures.captions import alignment_caption, sti_layers_caption


def per_layer(values: dict[tuple[int, str], float]) -> pd.DataFrame:
    rows = [{"block": b, "kind": k, "label": f"{b}·{k}" if b >= 0 else k, "sti": v} for (b, k), v in values.items()]
    return pd.DataFrame(rows)


def test_sti_caption_early_then_late() -> None:
    early = per_layer({(0, "in_proj"): 9.0, (0, "c_proj"): 5.0, (1, "in_proj"): 2.0, (2, "in_proj"): 1.0,
                       (3, "c_proj"): 0.5, (-1, "positional_embedding"): 0.1})
    text = sti_layers_caption(early)
    assert "highest layer is 0·in_proj (STI 9)" in text
    assert "peaks in block 0 of 0–3, an early block (as in the paper)" in text

    late = per_layer({(0, "in_proj"): 1.0, (1, "in_proj"): 2.0, (2, "in_proj"): 1.5, (3, "c_proj"): 7.0,
                      (3, "in_proj"): 0.2})
    text = sti_layers_caption(late)
    assert "highest layer is 3·c_proj (STI 7)" in text and "block 3 of 0–3" in text
    assert "late block (unlike the paper)" in text


def test_sti_caption_picks_the_block_sum_not_the_single_cell() -> None:
    # the single highest cell is in block 0, but block 2's layers sum to more: the sentence reports both
    data = per_layer({(0, "in_proj"): 5.0, (1, "in_proj"): 1.0, (2, "in_proj"): 4.0, (2, "c_proj"): 4.0})
    text = sti_layers_caption(data)
    assert "highest layer is 0·in_proj" in text and "block 2 of 0–2" in text and "unlike the paper" in text


def test_sti_caption_without_blocks_or_values() -> None:
    assert "no finite STI" in sti_layers_caption(per_layer({(0, "in_proj"): math.nan}))
    assert sti_layers_caption(per_layer({(0, "in_proj"): 3.0})).endswith("(STI 3).")


def test_alignment_caption_follows_the_sign_of_r() -> None:
    agree = alignment_caption({"Task Arithmetic": 0.81, "Iso-C": 0.1})
    assert "Task Arithmetic: r = 0.81, as in the paper" in agree and "Iso-C: r = 0.10, no clear relation" in agree
    flipped = alignment_caption({"Task Arithmetic": -0.39})
    assert "Task Arithmetic: r = -0.39, the opposite" in flipped and "as in the paper" not in flipped
    assert "r undefined" in alignment_caption({"Iso-C": None})
