"""Building the zoo: files, manifest, reuse, growth, determinism, and the ModelPool interface."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from spectral.pool import ModelPool, load_image_encoder
from spectral.taskset import TaskSet
from spectral.zoo import ZooConfig, ZooError, ZooPool, build_zoo, is_built, read_manifest
from spectral.zoo.build import sha256_file


def test_manifest_and_files(micro_root):
    m = read_manifest(micro_root)
    cfg = ZooConfig.micro()
    assert m["seed"] == 0 and m["config_hash"] == cfg.fingerprint()
    assert m["task_order"] == list(cfg.task_order)
    assert m["model"]["open_clip_name"] == cfg.model.name
    assert (micro_root / m["base"]["file"]).is_file()
    assert sha256_file(micro_root / m["base"]["file"]) == m["base"]["sha256"]
    for name, e in m["tasks"].items():
        for kind in ("checkpoint", "head", "data"):
            assert sha256_file(micro_root / e[kind]) == e[f"{kind}_sha256"]
        assert set(e["accuracy"]) == {"zeroshot", "finetuned"}
        assert set(e["accuracy"]["zeroshot"]) == {"val", "test"}
        assert e["classes"] and e["templates"] and e["seeds"]["finetune"] > 0
        ckpt = load_file(str(micro_root / e["checkpoint"]))
        assert all(k.startswith("visual.") for k in ckpt)
    assert json.loads((micro_root / "manifest.json").read_text()) == m
    assert not list(micro_root.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_heads_beat_chance_and_finetuning_helps(micro_pool):
    zs = micro_pool.recorded_accuracy("zeroshot")
    ft = micro_pool.recorded_accuracy("finetuned")
    for t in micro_pool.task_names:
        chance = 1 / len(micro_pool.class_names(t))
        assert zs[t] > chance, (t, zs[t], chance)
        assert ft[t] > chance, (t, ft[t], chance)
    assert sum(ft.values()) > sum(zs.values())


def test_model_pool_interface(micro_pool):
    assert isinstance(micro_pool, ModelPool)
    assert micro_pool.name.startswith("zoo-4") and micro_pool.num_tasks == 4
    base = micro_pool.base_state_dict()
    assert all(k.startswith("visual.") for k in base)
    for t in micro_pool.task_names:
        ft = micro_pool.finetuned_state_dict(t)
        assert ft.keys() == base.keys()
        assert all(ft[k].shape == base[k].shape for k in base)
        assert any(not torch.equal(ft[k], base[k]) for k in base)
        head = micro_pool.head(t)
        assert head.shape == (len(micro_pool.class_names(t)), micro_pool.spec.embed_dim)
        assert torch.allclose(head.norm(dim=1), torch.ones(head.shape[0]), atol=1e-5)
        image, label = micro_pool.dataset(t, "test")[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
        assert len(micro_pool.dataset(t, "val")) == 64 and len(micro_pool.dataset(t, "test")) == 128
    assert len(micro_pool.dataset("colors", "train")) == 256
    encoder = load_image_encoder(micro_pool, base)
    assert not encoder.training
    ts = TaskSet.from_pool(micro_pool)
    assert ts.task_names == micro_pool.task_names
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in ts.matrix_keys
    with pytest.raises(ZooError):
        micro_pool.head("no-such-task")


def test_fingerprint_is_content_based(micro_root, micro_pool):
    again = ZooPool(micro_root)
    assert again.fingerprint() == micro_pool.fingerprint()
    fewer = ZooPool(micro_root, ["colors", "digits"])
    assert fewer.name.startswith("zoo-2") and fewer.fingerprint() != micro_pool.fingerprint()


def _nano(**changes):
    """The micro zoo with almost no training: for build mechanics, not for accuracy."""
    cfg = ZooConfig.micro()
    train = dataclasses.replace(cfg.train, pretrain_steps=3, pretrain_images_per_task=32, finetune_steps=2)
    return dataclasses.replace(cfg, name="nano", train=train, n_train=32, n_val=16, n_test=16, **changes)


def test_reuse(micro_root):
    calls = []
    build_zoo(None, config=ZooConfig.micro(), root=micro_root, progress=lambda i, n, t: calls.append(t))
    assert calls == ["zoo ready"]  # nothing rebuilt


def test_growth_and_determinism(tmp_path):
    cfg = _nano()
    whole = build_zoo(2, config=cfg, root=tmp_path / "whole")
    steps = tmp_path / "steps"
    build_zoo(1, config=cfg, root=steps)  # same seed, built in two steps: 1 task, then 2
    assert list(read_manifest(steps)["tasks"]) == [cfg.task_order[0]]
    build_zoo(2, config=cfg, root=steps)
    a, b = read_manifest(whole), read_manifest(steps)
    assert a["base"]["sha256"] == b["base"]["sha256"]
    assert a["task_order"] == b["task_order"] == list(cfg.task_order[:2])
    for t in a["tasks"]:
        for kind in ("checkpoint", "head", "data"):
            assert a["tasks"][t][f"{kind}_sha256"] == b["tasks"][t][f"{kind}_sha256"], (t, kind)
    t = cfg.task_order[1]
    x = load_file(str(whole / "tasks" / f"{t}.safetensors"))
    y = load_file(str(steps / "tasks" / f"{t}.safetensors"))
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert ZooPool(whole).fingerprint() == ZooPool(steps).fingerprint()


def test_another_seed_or_config_rebuilds(tmp_path):
    cfg = _nano(task_order=("colors",), pretrain_tasks=("colors",))
    r1 = build_zoo(None, seed=1, config=cfg, root=tmp_path / "s1")
    r2 = build_zoo(None, seed=2, config=cfg, root=tmp_path / "s2")
    assert read_manifest(r1)["base"]["sha256"] != read_manifest(r2)["base"]["sha256"]
    # a changed configuration rebuilds instead of mixing checkpoints
    cfg2 = dataclasses.replace(cfg, n_test=8)
    assert not is_built(None, seed=1, config=cfg2, cache_dir=tmp_path)
    build_zoo(None, seed=1, config=cfg2, root=r1)
    assert read_manifest(r1)["config_hash"] == cfg2.fingerprint()
    assert len(ZooPool(r1).dataset("colors", "test")) == 8


def test_default_location_and_open_zoo_pool(tmp_path, monkeypatch):
    from spectral.zoo import ensure_zoo, open_zoo_pool, zoo_root

    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path / "c"))
    cfg = _nano(task_order=("colors", "digits"), pretrain_tasks=("colors", "digits"))
    assert zoo_root(config=cfg) == tmp_path / "c" / "zoo" / "nano-seed0"
    with pytest.raises(ZooError):
        ensure_zoo(1, config=cfg, build=False)
    pool = ensure_zoo(1, config=cfg)
    assert pool.task_names == ["colors"] and is_built(1, config=cfg)
    assert pool.name == "zoo-1-nano-s0"
    pool2 = open_zoo_pool("zoo-2", config=cfg)
    assert pool2.task_names == ["colors", "digits"]
    with pytest.raises(ZooError):
        open_zoo_pool("zoo-eight")
