"""Fixtures of the adaptation tests: a synthetic pool (a real tiny open_clip ViT) and its engine."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

if str(Path(__file__).parent) not in sys.path:  # for `import synthetic` (appended: never shadow another conftest)
    sys.path.append(str(Path(__file__).parent))

from synthetic import SyntheticPool, make_engine  # noqa: E402

from spectral.engine import Engine  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one intra-op thread is ~100x faster than two on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_pool() -> SyntheticPool:
    return SyntheticPool(3)


@pytest.fixture
def engine(synthetic_pool, tmp_path) -> Engine:
    return make_engine(synthetic_pool, tmp_path)
