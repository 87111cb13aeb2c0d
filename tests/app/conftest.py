"""Fixtures of the dashboard tests: the tiny fake pool registered under "fake-4" and chosen by default."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (str(HERE), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

import fake_pool  # noqa: E402
from app_helpers import APP, chart_data, chart_keys, decode  # noqa: E402,F401  (re-exported for the page tests)

from spectral.app_state import register_pool  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _fake_pool_registered(tmp_path_factory: pytest.TempPathFactory) -> None:
    register_pool(fake_pool.NAME, fake_pool.make_pool)


@pytest.fixture(autouse=True)
def _default_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", fake_pool.NAME)


@pytest.fixture(autouse=True)
def _pool_roots(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pools written to tmp_path lie inside the dashboard's pool roots (issue 26); tests of the roots set their own."""
    import os

    monkeypatch.setenv("SPECTRAL_POOL_ROOTS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(ROOT)]))


@pytest.fixture(autouse=True)
def _fresh_job_queue() -> None:
    """Each test starts with an empty server queue: jobs of earlier tests (seconds ago) would count as other
    sessions keeping the server busy, and the merge lab would show an estimate first (issue 26)."""
    from spectral import serving

    serving.reset_job_queue()
