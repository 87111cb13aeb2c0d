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


@pytest.fixture(autouse=True)
def _isolated_cache_dir(tmp_path, monkeypatch):
    """Never let a test write into the project's cache/."""
    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
