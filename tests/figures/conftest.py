"""Fixtures of the figure/analysis tests: a workspace over the tiny fake pool of tests/app."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "app") not in sys.path:  # fake_pool
    sys.path.insert(0, str(HERE.parent / "app"))
if str(HERE) not in sys.path:  # figure_helpers; appended, so that a bare `import conftest` still finds tests/app's
    sys.path.append(str(HERE))

import fake_pool  # noqa: E402

from spectral.app_state import Workspace, register_pool  # noqa: E402


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """An open workspace on the fake pool with its own cache (shared by the module's tests: it only grows)."""
    register_pool(fake_pool.NAME, fake_pool.make_pool)
    ws = Workspace(fake_pool.NAME, device="cpu", cache_dir=str(tmp_path_factory.mktemp("figcache")),
                   pool=fake_pool.make_pool())
    return ws.open()
