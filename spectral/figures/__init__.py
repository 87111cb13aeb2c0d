"""Plotly figure builders for the dashboard and the CLI (they return ``go.Figure`` and never touch Streamlit),
the paper template applied at export, and static / data export.

- builders: :mod:`.taskvectors`, :mod:`.spectra`, :mod:`.interference`, :mod:`.alignment`, :mod:`.accuracy`,
  :mod:`.sweeps`;
- :mod:`.registry`: every figure by name (defaults, data, drawing), shared by pages and ``python -m spectral figure``;
- :mod:`.template`: the paper template (simple_white, serif, one/two-column widths);
- :mod:`.export`: PDF/SVG/PNG through one reused kaleido browser, CSV of the data, YAML of the settings.
"""
from __future__ import annotations

from spectral.figures.export import ExportError, csv_bytes, export_figure, load_settings, settings_yaml
from spectral.figures.template import apply_paper_template

__all__ = ["ExportError", "apply_paper_template", "csv_bytes", "export_figure", "load_settings", "settings_yaml"]
