"""``python -m spectral figure``: regenerate a figure headlessly from the YAML the dashboard exports."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from figure_helpers import needs_chromium

from spectral import cli
from spectral.figures import registry
from spectral.figures.export import csv_bytes, settings_yaml


def _yaml(workspace, tmp_path, name: str, settings: dict) -> tuple:
    data = registry.compute_cached(name, workspace, settings)
    doc = registry.settings_document(name, workspace.spec, settings, meta=data.meta)
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(settings_yaml(doc))
    return path, data


def test_figure_command_writes_csv_and_yaml(workspace, tmp_path, capsys) -> None:
    path, data = _yaml(workspace, tmp_path, "sti_layers", {"k_frac": 0.25})
    out_csv, out_yaml = tmp_path / "out" / "sti.csv", tmp_path / "sti.yaml"
    assert cli.main(["figure", str(path), "-o", str(out_csv), "-o", str(out_yaml), "--device", "cpu"]) == 0
    assert out_csv.read_bytes() == csv_bytes(data.table)
    assert "k_frac: 0.25" in out_yaml.read_text()
    assert "wrote" in capsys.readouterr().out


def test_figure_command_overrides_and_errors(workspace, tmp_path, capsys) -> None:
    path, _ = _yaml(workspace, tmp_path, "interpolation", {"beta": 0.2})
    out = tmp_path / "beta.csv"
    assert cli.main(["figure", str(path), "-o", str(out), "--set", "beta=0.9"]) == 0
    assert "\n0.9," in out.read_text()  # the β = 0.9 spectrum replaced 0.2
    assert cli.main(["figure", str(path), "-o", str(tmp_path / "x.gif")]) == 2
    assert cli.main(["figure", str(path)]) == 2
    assert cli.main(["figure", str(tmp_path / "missing.yaml"), "-o", str(out)]) == 2
    assert cli.main(["figure", str(path), "-o", str(out), "--set", "nope=1"]) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert cli.main(["figure", "--list"]) == 0


@needs_chromium
def test_figure_command_writes_pdf_and_svg(workspace, tmp_path) -> None:
    path, _ = _yaml(workspace, tmp_path, "cosine", {})
    pdf, svg = tmp_path / "cos.pdf", tmp_path / "cos.svg"
    assert cli.main(["figure", str(path), "-o", str(pdf), "-o", str(svg), "--columns", "two"]) == 0
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert ET.fromstring(svg.read_bytes()).get("width") == "672"


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
@needs_chromium
def test_every_page_figure_exports(workspace, fmt) -> None:
    """One export per builder family in the paper template (heatmaps with boundaries, polar, subplots)."""
    from spectral.figures.export import export_figure

    for name in ("sti_blocks", "radar", "spectra"):
        data = registry.compute_cached(name, workspace, {})
        payload = export_figure(registry.build(name, data, {}), fmt, columns=registry.get_kind(name).columns)
        assert payload.startswith(b"%PDF-") if fmt == "pdf" else ET.fromstring(payload).tag.endswith("svg")
