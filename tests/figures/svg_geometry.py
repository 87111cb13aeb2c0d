"""Geometry of exported SVGs measured in Debian's chromium (Playwright): every text element's box and font size.

A figure is clean on paper when every text box lies inside the canvas, no two text boxes overlap, and every
font is at least :data:`MIN_FONT_PT` at print size (kaleido's CSS pixels are 1/96 in: 1 px = 0.75 pt). One
family is used: :func:`font_families` lists what the SVG asks for.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

MIN_FONT_PT = 6.0
PT_PER_PX = 72 / 96
#: boxes that overlap by less than this (px, in both directions) touch rather than overlap (glyph side bearings)
OVERLAP_TOLERANCE_PX = 1.0

_MEASURE_JS = """
() => {
  const svg = document.querySelector('svg');
  const out = [];
  for (const el of svg.querySelectorAll('text')) {
    const text = el.textContent.trim();
    if (!text) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const b = el.getBBox();
    const m = el.getScreenCTM();
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
        .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
    const cls = (el.getAttribute('class') || '') + ' ' + ((el.parentNode && el.parentNode.getAttribute &&
        el.parentNode.getAttribute('class')) || '');
    out.push({text, cls, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, px: parseFloat(style.fontSize),
              family: style.fontFamily, corners});
  }
  const box = svg.getBoundingClientRect();
  return {width: box.width, height: box.height, texts: out};
}
"""


@dataclass(frozen=True)
class TextBox:
    text: str
    cls: str
    x0: float
    y0: float
    x1: float
    y1: float
    px: float
    family: str
    corners: tuple[tuple[float, float], ...] = ()

    @property
    def pt(self) -> float:
        return self.px * PT_PER_PX


@dataclass(frozen=True)
class Geometry:
    width: float
    height: float
    texts: list[TextBox]

    def outside(self, tol: float = 0.5) -> list[TextBox]:
        return [t for t in self.texts
                if t.x0 < -tol or t.y0 < -tol or t.x1 > self.width + tol or t.y1 > self.height + tol]

    def overlaps(self) -> list[tuple[TextBox, TextBox]]:
        out = []
        for i, a in enumerate(self.texts):
            for b in self.texts[i + 1:]:
                dx = min(a.x1, b.x1) - max(a.x0, b.x0)
                dy = min(a.y1, b.y1) - max(a.y0, b.y0)
                if dx > OVERLAP_TOLERANCE_PX and dy > OVERLAP_TOLERANCE_PX and _rotated_overlap(a, b):
                    out.append((a, b))
        return out

    def smallest_pt(self) -> float:
        return min((t.pt for t in self.texts), default=float("nan"))

    def small(self, minimum: float = MIN_FONT_PT) -> list[TextBox]:
        return [t for t in self.texts if t.pt < minimum - 1e-6]


def _rotated_overlap(a: TextBox, b: TextBox) -> bool:
    """Separating-axis test of two text boxes as drawn (rotated tick labels overlap only if their rotated
    rectangles do, not their axis-aligned bounds); overlaps under the tolerance do not count."""
    if len(a.corners) != 4 or len(b.corners) != 4:
        return True
    for poly in (a.corners, b.corners):
        for i in range(2):
            (x0, y0), (x1, y1) = poly[i], poly[i + 1]
            nx, ny = y1 - y0, x0 - x1
            norm = (nx * nx + ny * ny) ** 0.5 or 1.0
            nx, ny = nx / norm, ny / norm
            pa = [x * nx + y * ny for x, y in a.corners]
            pb = [x * nx + y * ny for x, y in b.corners]
            if min(max(pa), max(pb)) - max(min(pa), min(pb)) <= OVERLAP_TOLERANCE_PX:
                return False
    return True


def font_families(svg: str) -> set[str]:
    """The first family of every font-family declaration in the SVG."""
    found = re.findall(r"font-family:\s*([^;\"]+)", svg)
    return {f.split(",")[0].strip().strip("'\"") for f in found}


def chromium_path() -> str | None:
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


class Measurer:
    """One headless chromium for many SVGs (use as a context manager)."""

    def __enter__(self) -> "Measurer":
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                                 args=["--no-sandbox"])
        self._page = self._browser.new_page()
        return self

    def __exit__(self, *exc: object) -> None:
        self._browser.close()
        self._pw.stop()

    def measure(self, svg: bytes | str) -> Geometry:
        text = svg.decode() if isinstance(svg, bytes) else svg
        self._page.set_content(f"<html><body style='margin:0'>{text}</body></html>")
        raw = self._page.evaluate(_MEASURE_JS)
        return Geometry(raw["width"], raw["height"], [TextBox(**{**t, "corners": tuple(map(tuple, t["corners"]))}) for t in raw["texts"]])
