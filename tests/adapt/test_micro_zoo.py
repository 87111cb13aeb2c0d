"""Adaptation on the real micro zoo (a tiny open_clip CLIP pre-trained and fine-tuned on generated tasks)."""
from __future__ import annotations

import pytest
import torch

from spectral.adapt import AdaptConfig, AdaptiveMerge, run_adaptation
from spectral.engine import Engine
from spectral.taskset import TaskSet


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from spectral.zoo import ZooConfig, ensure_zoo

    root = tmp_path_factory.mktemp("microzoo")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pool = ensure_zoo(None, config=ZooConfig.micro(), cache_dir=root)
    finally:
        torch.set_num_threads(before)
    return pool, root


@pytest.mark.slow
def test_micro_zoo_start_points_and_entropy(micro, tmp_path):
    pool, _ = micro
    engine = Engine(TaskSet.from_pool(pool), cache_dir=tmp_path / "cache", device="cpu")
    ta = AdaptiveMerge(engine, base="task_arithmetic", lambda_mode="frozen", lambda_init=0.3).state_dict()
    ref = engine.merge("task_arithmetic", alpha=0.3)
    for k in ref:
        torch.testing.assert_close(ta[k], ref[k], rtol=0, atol=1e-6 * (1 + float(ref[k].abs().max())))
    cart = AdaptiveMerge(engine, base="cart", lambda_init=1.0, k_frac=0.16).state_dict()
    ref = engine.merge("cart", alpha=1.0, k_frac=0.16)
    for k in ref:
        torch.testing.assert_close(cart[k], ref[k], rtol=0, atol=1e-6 * (1 + float(ref[k].abs().max())))
    for base in ("task_arithmetic", "cart"):
        cfg = AdaptConfig(base=base, steps=5, lr=1e-2, select_every=5, select_images=64)
        result = run_adaptation(engine, pool, cfg, cache_dir=tmp_path)
        first, last = result.traces["select_entropy"]
        assert last < first, (base, first, last)
