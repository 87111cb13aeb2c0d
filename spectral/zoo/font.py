"""A 5×7 bitmap font for the glyph tasks (digits and a few capital letters), so that nothing depends on a
system font or on PIL's rendering. Rows are top to bottom, ``#`` = ink."""
from __future__ import annotations

import torch
from torch import Tensor

_GLYPHS: dict[str, str] = {
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "###.. #..#. #...# #...# #...# #..#. ###..",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
}

GLYPH_CHARS: tuple[str, ...] = tuple(_GLYPHS)


def glyph_bitmaps(chars: str | list[str] | tuple[str, ...]) -> Tensor:
    """Bitmaps of ``chars`` as a float tensor (len(chars), 1, 7, 5) with ink = 1."""
    out = torch.zeros(len(chars), 1, 7, 5)
    for i, c in enumerate(chars):
        rows = _GLYPHS[c].split()
        for y, row in enumerate(rows):
            for x, ch in enumerate(row):
                if ch == "#":
                    out[i, 0, y, x] = 1.0
    return out
