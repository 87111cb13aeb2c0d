"""The LoRA demo zoo: PEFT adapters trained on the micro zoo's tower, read back exactly as PEFT merges them."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def lora_micro(micro_pool, tmp_path_factory):
    from spectral.checkpoints.lora import make_lora_pool
    from spectral.zoo.lora import build_lora_zoo

    root = tmp_path_factory.mktemp("lora-adapters")  # beside the shared micro zoo, not inside it
    manifest = build_lora_zoo(micro_pool, root, steps=10)
    return make_lora_pool(micro_pool, {t: root / t for t in micro_pool.task_names}, name="lora-zoo-micro"), manifest


def test_lora_zoo_adapters_equal_peft_merge_and_unload(lora_micro, micro_pool) -> None:
    from peft import PeftModel

    pool, manifest = lora_micro
    assert set(manifest["adapters"]) == set(micro_pool.task_names)
    ranks = {cfg["r"] for cfg in manifest["adapters"].values()}
    assert ranks == {4, 8}  # mixed ranks (and, on the third task, c_fc only)
    base = {k[len("visual."):]: v for k, v in micro_pool.base_state_dict().items()}
    for task in micro_pool.task_names:
        tower = micro_pool.build_image_encoder()
        tower.load_state_dict(base)
        merged = PeftModel.from_pretrained(tower, str(pool.adapter_paths[task])).merge_and_unload().state_dict()
        ours = pool.finetuned_state_dict(task)
        for key, value in merged.items():
            assert torch.allclose(ours["visual." + key], value, atol=1e-6), (task, key)
    third = micro_pool.task_names[2]
    assert json.loads((pool.adapter_paths[third] / "adapter_config.json").read_text())["target_modules"] == ["c_fc"]


def test_every_method_runs_on_the_lora_zoo(lora_micro, tmp_path) -> None:
    from spectral.engine import Engine
    from spectral.methods import REGISTRY
    from spectral.taskset import TaskSet

    pool, _ = lora_micro
    ts = TaskSet.from_pool(pool)
    assert all(k.endswith(("mlp.c_fc.weight", "mlp.c_proj.weight")) for k in ts.keys)
    engine = Engine(ts, cache_dir=tmp_path, device="cpu")
    engine.build_cache()
    base = pool.base_state_dict()
    for name, method in REGISTRY.items():
        if method.kind != "merge":
            continue
        merged = engine.merge(name)
        assert set(merged) == set(base), name
        for key in base:
            assert torch.isfinite(merged[key]).all(), (name, key)
            if key not in ts.keys:
                assert torch.equal(merged[key], base[key]), (name, key)  # not adapted by any task: unchanged
    scores, counts = pool.task_scores(engine.merge("tsv_m"), device="cpu")
    assert set(scores) == set(pool.task_names) and all(0.0 <= s <= 1.0 for s in scores.values())


def test_lora_zoo_is_a_named_demo_pool() -> None:
    from spectral.app_state import ZOO_POOLS, is_zoo_spec
    from spectral.zoo.lora import adapter_plan, is_lora_zoo_spec

    assert "lora-zoo-8" in ZOO_POOLS and is_zoo_spec("lora-zoo-8") and is_zoo_spec("lora-zoo-micro")
    assert is_lora_zoo_spec("lora-zoo-micro") and not is_lora_zoo_spec("zoo-8")
    plan = adapter_plan(["a", "b", "c", "d"])
    assert [p["r"] for p in plan.values()] == [4, 8, 4, 8] and plan["c"]["target_modules"] == ["c_fc"]
