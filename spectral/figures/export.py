"""Static export of figures (PDF, SVG, PNG through kaleido and Chromium), CSV of their data, YAML of settings.

One kaleido browser is started on the first export and reused for every later one (``kaleido.start_sync_server``:
five figures in about 2 s instead of about 2 s each); exports from several threads are serialised. MathJax is
disabled (it would load from a CDN). Chromium: Debian's ``chromium`` package, found without configuration;
``BROWSER_PATH`` forces another binary. Nothing here ever downloads a browser.
"""
from __future__ import annotations

import atexit
import datetime as _dt
import logging
import math
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml

from spectral.errors import SpectralError
from spectral.figures.template import Columns, apply_paper_template

log = logging.getLogger(__name__)

IMAGE_FORMATS: dict[str, str] = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png"}
DATA_FORMATS: dict[str, str] = {"csv": "text/csv", "yaml": "application/x-yaml"}
#: PNG resolution multiplier: 3 × 96 px/in ≈ 300 dpi
PNG_SCALE = 3

_LOCK = threading.Lock()
_SERVER_STARTED = False


class ExportError(SpectralError):
    """A figure could not be rendered to a static image (no Chromium, kaleido missing, render failure)."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary kaleido can drive: ``$BROWSER_PATH`` or Debian's chromium on PATH."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _ensure_server() -> Any:
    global _SERVER_STARTED
    try:
        import kaleido
    except ImportError as err:
        raise ExportError("static export needs kaleido ≥ 1.0 (pip install kaleido==1.5.0)") from err
    if not _SERVER_STARTED:
        chromium = find_chromium()
        if chromium is None:
            raise ExportError(
                "static export needs a Chromium binary: install Debian's chromium (apt-get install -y chromium) "
                "or set BROWSER_PATH"
            )
        os.environ.setdefault("BROWSER_PATH", chromium)
        for name in ("kaleido", "choreographer", "logistro"):  # their INFO lines would flood the CLI's log
            logging.getLogger(name).setLevel(logging.WARNING)
        kaleido.start_sync_server(mathjax=False, silence_warnings=True)
        _SERVER_STARTED = True
        atexit.register(stop_server)
    return kaleido


def stop_server() -> None:
    """Stop the shared kaleido browser (it restarts on the next export)."""
    global _SERVER_STARTED
    with _LOCK:
        if _SERVER_STARTED:
            try:
                import kaleido

                kaleido.stop_sync_server(silence_warnings=True)
            except Exception:  # noqa: BLE001 - shutting down
                log.debug("stopping kaleido", exc_info=True)
            _SERVER_STARTED = False


def render_image(fig: go.Figure, fmt: str) -> bytes:
    """Bytes of ``fig`` as pdf, svg or png at the figure's own layout size (no template applied)."""
    fmt = fmt.lower()
    if fmt not in IMAGE_FORMATS:
        raise ExportError(f"unknown image format {fmt!r}; choose one of {sorted(IMAGE_FORMATS)}")
    width = fig.layout.width or 700
    height = fig.layout.height or 500
    opts = {"format": fmt, "width": width, "height": height, "scale": PNG_SCALE if fmt == "png" else 1}
    with _LOCK:
        kaleido = _ensure_server()
        try:
            data = kaleido.calc_fig_sync(fig.to_dict(), opts=opts)
        except Exception as err:  # noqa: BLE001 - choreographer/kaleido raise many types
            raise ExportError(f"rendering the figure as {fmt.upper()} failed: {err}") from err
    if isinstance(data, str):
        data = data.encode()
    return bytes(data)


def export_figure(fig: go.Figure, fmt: str, *, columns: Columns = "one", height_in: float | None = None) -> bytes:
    """The paper version of ``fig`` (serif font, one- or two-column width) as PDF, SVG or PNG bytes."""
    return render_image(apply_paper_template(fig, columns, height_in), fmt)


# -- data and settings ------------------------------------------------------------------------------------------------
def csv_bytes(table: pd.DataFrame) -> bytes:
    """CSV of a figure's data. A named or non-default index (matrices: task names) is written as a column."""
    named = table.index.name is not None or not isinstance(table.index, pd.RangeIndex)
    return table.to_csv(index=named).encode()


def plain(value: Any) -> Any:
    """Settings → YAML-safe plain Python (numpy scalars, tuples, NaN)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def settings_yaml(document: Mapping[str, Any]) -> bytes:
    """The YAML of a figure's settings document (see :func:`spectral.figures.registry.settings_document`)."""
    return yaml.safe_dump(plain(document), sort_keys=False, allow_unicode=True).encode()


def load_settings(source: str | bytes | Path) -> dict[str, Any]:
    """Parse a settings YAML (text, bytes or a path)."""
    looks_like_path = isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    if isinstance(source, Path) or looks_like_path:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no figure settings file at {path}")
        source = path.read_text()
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError as err:
        raise SpectralError(f"figure settings are not valid YAML: {err}") from err
    if not isinstance(doc, dict) or "figure" not in doc:
        raise SpectralError("figure settings must be a mapping with at least a 'figure' entry")
    return doc


_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")
#: longest stem before the settings part is replaced by a hash of it
MAX_STEM = 80
_SHORT = {"task_arithmetic": "ta", "weight_average": "wa", "tsv_m": "tsvm", "iso_c": "isoc", "iso_cts": "isocts",
          "consensus": "cons", "True": "on", "False": "off", "None": "auto"}


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text.replace("·", ".").replace("/", "_")).strip("._-")


def short_name(value: str) -> str:
    """The short form of a method or flag in file names (``tsv_m`` → ``tsvm``); other text unchanged."""
    return _SHORT.get(str(value), str(value))


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _SHORT[str(value)]
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_short(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return "+".join(f"{_short(k)}.{_short(v)}" for k, v in value.items()) or "none"
    return _SHORT.get(str(value), str(value))


def file_stem(kind: str, pool: str, state: Mapping[str, Any] | None = None) -> str:
    """A short, filesystem-safe file name carrying the figure's state: ``spectra-zoo-8-layer=0.in_proj-
    methods=ta+isoc``. ``state`` holds what sets this figure apart (the layer, non-default settings); a stem
    longer than :data:`MAX_STEM` keeps kind and pool and replaces the rest by a hash of it (still unique)."""
    pool_part = _safe(Path(pool).stem if ("/" in pool or "\\" in pool) else pool)
    head = "-".join(p for p in (_safe(kind), pool_part) if p)
    parts = [_safe(f"{k}={_short(v)}") for k, v in (state or {}).items()]
    stem = "-".join([head, *[p for p in parts if p]])
    if len(stem) > MAX_STEM:
        import hashlib

        digest = hashlib.blake2s("-".join(parts).encode(), digest_size=4).hexdigest()
        keep = head
        for part in parts:  # as many whole parts as fit (shorter later ones too), then the hash of all of them
            if len(keep) + len(part) + 10 > MAX_STEM:
                continue
            keep += "-" + part
        stem = f"{keep}-{digest}"
    return stem


def timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "DATA_FORMATS", "IMAGE_FORMATS", "ExportError", "csv_bytes", "export_figure", "file_stem", "find_chromium",
    "load_settings", "plain", "render_image", "settings_yaml", "short_name", "stop_server", "timestamp",
]
