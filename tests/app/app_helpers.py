"""Helpers of the dashboard tests (a uniquely named module: ``from conftest import`` is ambiguous in a full run)."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def decode(value: Any) -> Any:
    """Plotly ≥ 6 writes numpy arrays as {"dtype", "bdata", "shape"}: decode them (recursively) to lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if value.get("shape"):
                shape = [int(s) for s in str(value["shape"]).split(",")]
                arr = arr.reshape(shape)
            return arr.tolist()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def chart_data(at: Any, key: str) -> list[dict[str, Any]]:
    """Decoded trace list of the plotly chart shown by ``_ui.show_figure(..., key=key)`` in an AppTest run."""
    charts = [c for c in at.get("plotly_chart") if str(c.proto.id).endswith(f"-chart_{key}")]
    assert charts, f"no chart {key!r}; charts are {chart_keys(at)}"
    return decode(json.loads(charts[0].proto.spec)["data"])


def chart_keys(at: Any) -> list[str]:
    return [str(c.proto.id).rsplit("-chart_", 1)[-1] for c in at.get("plotly_chart")]
