"""Fixtures of the adaptation tests: a synthetic pool (a real tiny open_clip ViT) and its engine."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # for `import synthetic` (appended: never shadow another conftest)
    sys.path.append(str(Path(__file__).parent))

from synthetic import SyntheticPool, make_engine  # noqa: E402

from spectral.engine import Engine  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every adaptation test runs on one intra-op thread (see ``one_torch_thread``)."""


@pytest.fixture(scope="session")
def synthetic_pool() -> SyntheticPool:
    return SyntheticPool(3)


@pytest.fixture
def engine(synthetic_pool, tmp_path) -> Engine:
    return make_engine(synthetic_pool, tmp_path)
