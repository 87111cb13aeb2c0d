"""Paper template and export: PDF / SVG / PNG bytes through kaleido + chromium, CSV, settings YAML."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from figure_helpers import needs_chromium

from spectral.errors import SpectralError
from spectral.figures import export
from spectral.figures.template import SERIF, apply_paper_template, size_px


def _figure() -> go.Figure:
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="a"))
    fig.add_shape(type="rect", x0=1, x1=2, y0=1, y1=2)
    return fig


def test_paper_template_is_applied_to_a_copy() -> None:
    fig = _figure()
    paper = apply_paper_template(fig, "one")
    assert paper.layout.width == 336 and paper.layout.height == size_px("one")[1]
    assert apply_paper_template(fig, "two").layout.width == 672
    assert paper.layout.font.family == SERIF and "serif" in SERIF
    assert paper.layout.template.layout.plot_bgcolor == "white"  # simple_white base
    assert paper.layout.shapes[0].fillcolor == "rgba(0,0,0,0)"  # outline boxes stay transparent
    assert fig.layout.width is None  # the screen figure is unchanged: still the default template
    assert fig.layout.template == pio.templates[pio.templates.default] != paper.layout.template
    with pytest.raises(ValueError):
        size_px("three")  # type: ignore[arg-type]


@needs_chromium
def test_static_formats() -> None:
    fig = _figure()
    pdf = export.export_figure(fig, "pdf", columns="one")
    assert pdf.startswith(b"%PDF-")
    assert b"/MediaBox [0 0 252" in pdf  # 3.5 in = 252 pt wide
    svg = export.export_figure(fig, "svg", columns="two")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.get("width") == "672"
    assert "DejaVu Serif" in svg.decode() and "Liberation" not in svg.decode() and "Times" not in svg.decode()
    png = export.export_figure(fig, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(export.ExportError, match="unknown image format"):
        export.export_figure(fig, "gif")


@needs_chromium
def test_one_font_family_in_the_pdf_greek_and_math_included() -> None:
    """Issue 11: the PDF embeds a single family (DejaVu Serif) even for σ, ‖, Δ, ᵀ and subscripts."""
    import re

    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2], name="‖Δₜ‖_F of UᵀU"))
    fig.update_layout(showlegend=True)
    fig.update_xaxes(title_text="singular value index i")
    fig.update_yaxes(title_text="σᵢ / σ₁ (β = 0.5, ρ → 1)")
    pdf = export.export_figure(fig, "pdf", columns="one")
    fonts = set(re.findall(rb"/BaseFont\s*/(?:[A-Z]{6}\+)?([A-Za-z-]+)", pdf))
    assert fonts and all(f.startswith(b"DejaVuSerif") for f in fonts), fonts


def test_missing_chromium_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    export.stop_server()
    monkeypatch.setattr(export, "find_chromium", lambda: None)
    with pytest.raises(export.ExportError, match="chromium"):
        export.export_figure(_figure(), "pdf")


def test_csv_and_settings_yaml_round_trip(tmp_path) -> None:
    flat = pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")]})
    assert export.csv_bytes(flat).decode().splitlines()[0] == "a,b"
    matrix = pd.DataFrame([[1.0, 0.2], [0.2, 1.0]], index=pd.Index(["x", "y"], name="task"), columns=["x", "y"])
    assert export.csv_bytes(matrix).decode().splitlines()[0] == "task,x,y"
    doc = {"figure": "spectra", "pool": "zoo-8", "settings": {"layer": "0·in_proj", "beta": 0.5, "k": None,
                                                             "methods": ("iso_c",)}}
    text = export.settings_yaml(doc)
    back = export.load_settings(text)
    assert back["settings"] == {"layer": "0·in_proj", "beta": 0.5, "k": None, "methods": ["iso_c"]}
    path = tmp_path / "s.yaml"
    path.write_bytes(text)
    assert export.load_settings(path)["figure"] == "spectra"
    with pytest.raises(SpectralError):
        export.load_settings("just: text\n")
    with pytest.raises(FileNotFoundError):
        export.load_settings(tmp_path / "missing.yaml")
    assert export.file_stem("spectra", "/data/pools/my pool.yaml") == "spectra-my_pool"
