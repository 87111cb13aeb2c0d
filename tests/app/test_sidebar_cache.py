"""The sidebar shows the cache's size on disk (fed by spectral.housekeeping.cache_summary)."""
from __future__ import annotations

import os
from pathlib import Path

from app_helpers import APP
from streamlit.testing.v1 import AppTest

from spectral.housekeeping import format_size


def test_sidebar_shows_the_cache_size() -> None:
    root = Path(os.environ["SPECTRAL_CACHE_DIR"])
    (root / "svd" / "ab").mkdir(parents=True, exist_ok=True)
    (root / "svd" / "ab" / f"{'ab' * 32}.safetensors").write_bytes(b"\0" * 123_456)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.sidebar.caption if c.value.startswith("Cache: ")]
    assert len(captions) == 1
    assert f"svd {format_size(123_456)}" in captions[0] and "on disk" in captions[0]
