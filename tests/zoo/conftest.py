"""A micro zoo built once per test session (seconds): 4 tasks, a 2-block width-32 open_clip ViT."""
from __future__ import annotations

import pytest

from spectral.zoo import ZooPool, build_micro_zoo


@pytest.fixture(scope="session")
def micro_root(tmp_path_factory):
    return build_micro_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def micro_pool(micro_root):
    return ZooPool(micro_root)
