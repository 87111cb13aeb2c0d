"""Shared fixtures: small ViT-shaped state dicts with the open_clip parameter names."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for `import helpers`

from helpers import make_vit_state_dicts  # noqa: E402


@pytest.fixture
def vit_state_dicts():
    """(base, {task: finetuned}) for a 2-block, width-8 ViT-like tower with 3 tasks."""
    return make_vit_state_dicts(num_tasks=3, seed=0)


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test: the tiny models of the adaptation tests run ~100x faster on one thread
    than on two on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache_dir(tmp_path, monkeypatch):
    """Never let a test write into the project's cache/."""
    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def micro_root(tmp_path_factory):
    """A micro zoo built once per test session (seconds): 4 tasks, a 2-block width-32 open_clip ViT."""
    from spectral.zoo import build_micro_zoo

    return build_micro_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def micro_pool(micro_root):
    from spectral.zoo import ZooPool

    return ZooPool(micro_root)
