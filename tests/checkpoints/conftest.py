"""Fixtures for the checkpoint tests: tiny open_clip configs registered once, tiny CLIP models."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for `import ckpt_writers`

import ckpt_writers as W  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def tiny_configs(tmp_path_factory):
    W.register_tiny_configs(tmp_path_factory.mktemp("open_clip_configs"))
    return W.TINY


@pytest.fixture(scope="session")
def tiny_models():
    """(base CLIP, {task: fine-tuned CLIP}) of the tiny architecture, three tasks."""
    base = W.make_clip(0)
    return base, {name: W.finetune(base, seed) for seed, name in enumerate(["MNIST", "SVHN", "EuroSAT"], start=1)}


@pytest.fixture(scope="session")
def vit_b32_visual():
    """The real ViT-B-32 image tower (random weights, built once: a few seconds)."""
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    return {f"visual.{k}": v for k, v in model.visual.state_dict().items()}
