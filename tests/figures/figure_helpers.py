"""Helpers of the figure tests (a uniquely named module: ``from conftest import`` is ambiguous in a full run)."""
from __future__ import annotations

import pytest

from spectral.figures.export import find_chromium

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="static export needs Debian's chromium (apt-get install -y chromium)")
