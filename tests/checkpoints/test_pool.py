"""CheckpointPool from YAML and from the two public layouts; named errors for broken pools."""
from __future__ import annotations

import sys
from pathlib import Path

import ckpt_writers as W
import pytest
import torch
import yaml
from PIL import Image

from spectral.checkpoints import (
    ArchitectureMismatchError,
    CheckpointPool,
    MissingTaskError,
    PoolConfigError,
    discover_pool,
    open_pool,
)
from spectral.errors import CheckpointError, MissingKeyError, ShapeMismatchError, UntrustedPickleError
from spectral.pool import ModelPool, load_image_encoder
from spectral.taskset import TaskSet

TASKS = ["MNIST", "SVHN", "EuroSAT"]
PAPER_ORDER = ["EuroSAT", "MNIST", "SVHN"]  # discovery sorts benchmark tasks in the papers' order


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _image_folder(root, classes, n_train=10, n_test=4, size=36):
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def test_tasks_in_every_format_give_the_same_task_matrices(tiny_models, tmp_path):
    """One fine-tuned model written in every format: all task matrices (Δ = θ_t − θ_0) are identical."""
    base, fts = tiny_models
    ft = fts["MNIST"]
    W.write_open_clip_pt(base, tmp_path / "base.pt")
    files = {
        "open_clip_pt": W.write_open_clip_pt(ft, tmp_path / "a.pt"),
        "open_clip_st": W.write_open_clip_safetensors(ft, tmp_path / "b.safetensors"),
        "task_vectors": W.write_task_vectors_pickle(ft, tmp_path / "c.pt"),
        "tall_masks": W.write_tall_masks_state_dict(ft, tmp_path / "d.pt"),
        "hf": W.write_hf_safetensors(ft, tmp_path / "e.safetensors"),  # CLIPVisionModel: proj from the base
        "hf_proj": W.write_hf_safetensors(ft, tmp_path / "f.safetensors", with_projection=True),
    }
    pool_file = _yaml(tmp_path / "pool.yaml", {
        "base": "base.pt", "quick_gelu": False,
        "tasks": [{"name": k, "checkpoint": v.name, "class_names": ["a", "b"]} for k, v in files.items()],
    })
    pool = open_pool(str(pool_file), trust_pickle=True)
    assert isinstance(pool, ModelPool) and pool.architecture == W.TINY and pool.task_names == list(files)
    ts = TaskSet.from_pool(pool)
    reference = {k: v - W.canonical_visual(base)[k] for k, v in W.canonical_visual(ft).items()}
    for key in ts.keys:
        stacked = ts.task_matrices(key)
        expected = reference[key]
        if key == "visual.proj":  # the CLIPVisionModel file has no projection: the base's is used, Δ = 0
            expected = torch.stack([expected] * 4 + [torch.zeros_like(expected), expected])
        else:
            expected = expected.expand_as(stacked)
        torch.testing.assert_close(stacked, expected, rtol=0, atol=1e-7, msg=key)


def test_yaml_pool_heads_data_and_encoder(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_open_clip_safetensors(base, tmp_path / "zeroshot.safetensors")
    for name in TASKS:
        W.write_open_clip_safetensors(fts[name], tmp_path / f"{name}.safetensors")
    W.write_head_pickle(torch.randn(10, 16), tmp_path / "head_MNIST.pt")
    _image_folder(tmp_path / "data" / "eurosat", ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway",
                                                   "Industrial", "Pasture", "PermanentCrop", "Residential",
                                                   "River", "SeaLake"], n_train=2, n_test=1)
    _image_folder(tmp_path / "data" / "svhn_folder", [str(i) for i in range(10)], n_train=2, n_test=1)
    pool_file = _yaml(tmp_path / "pool.yaml", {
        "name": "tiny-yaml", "base": "zeroshot.safetensors", "data_root": "data",
        "tasks": {
            "MNIST": {"checkpoint": "MNIST.safetensors", "head": "head_MNIST.pt"},
            "SVHN": {"checkpoint": "SVHN.safetensors", "data": "svhn_folder"},
            "EuroSAT": {"checkpoint": "EuroSAT.safetensors", "data": "eurosat",
                        "templates": ["a satellite photo of {c}."]},
        },
    })
    pool = CheckpointPool.from_yaml(pool_file, trust_pickle=True)
    assert pool.name == "tiny-yaml" and pool.task_names == TASKS and pool.quick_gelu is False
    # a head file, and zero-shot heads from the base's text tower with the benchmark's class names
    assert pool.head("MNIST").shape == (10, 16)
    for task in ("SVHN", "EuroSAT"):
        head = pool.head(task)
        assert head.shape == (10, 16)
        torch.testing.assert_close(head.norm(dim=-1), torch.ones(10))
    assert pool.class_names("EuroSAT")[2] == "brushland or shrubland"
    assert pool.templates("EuroSAT") == ["a satellite photo of {c}."]
    # the zero-shot head is cached on disk (content-keyed) and reused
    assert list((tmp_path / "cache" / "heads").glob("*.safetensors"))
    again = CheckpointPool.from_yaml(pool_file, trust_pickle=True).head("SVHN")
    torch.testing.assert_close(again, pool.head("SVHN"))
    # data with the architecture's preprocessing
    image, label = pool.dataset("EuroSAT", "test")[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)
    assert len(pool.dataset("EuroSAT", "train")) + len(pool.dataset("EuroSAT", "val")) == 20
    # the image encoder loads the base strictly and computes what the original model computes
    encoder = load_image_encoder(pool, dict(pool.base_state_dict()))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), base.visual(x))
    # MNIST has no data yet: pool check says so by name (a failure, not a skip), unless data is not checked
    report = {r["item"]: r for r in pool.check()}
    assert not report["MNIST: data"]["ok"] and "MNIST" in report["MNIST: data"]["detail"]
    assert all(r["ok"] for item, r in report.items() if item != "MNIST: data"), report
    assert all(r["ok"] for r in pool.check(data=False))
    # data_root is a real default: MNIST in torchvision's layout under it is found without a 'data:' entry
    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    import data_fakes

    fake = data_fakes.mnist(tmp_path / "data")
    pool = CheckpointPool.from_yaml(pool_file, trust_pickle=True)
    assert len(pool.dataset("MNIST", "test")) == len(fake.test)
    assert all(r["ok"] for r in pool.check()), pool.check()


def test_task_vectors_layout_is_discovered(tiny_models, tmp_path):
    base, fts = tiny_models
    model_dir = tmp_path / "checkpoints" / "tiny"
    model_dir.mkdir(parents=True)
    W.write_task_vectors_pickle(base, model_dir / "zeroshot.pt")
    for name in reversed(TASKS):
        (model_dir / name).mkdir()
        W.write_task_vectors_pickle(fts[name], model_dir / name / "finetuned.pt")
        W.write_head_pickle(torch.randn(7, 16), model_dir / f"head_{name}.pt")
    spec = discover_pool(tmp_path)
    assert spec.layout == "task_vectors" and [t.name for t in spec.tasks] == PAPER_ORDER
    pool = open_pool(str(tmp_path / "checkpoints"), trust_pickle=True)
    assert pool.quick_gelu is True and pool.architecture == W.TINY
    for name in TASKS:
        ft = pool.finetuned_state_dict(name)
        ref = W.canonical_visual(fts[name])
        assert set(ft) == set(ref) and all(torch.equal(ft[k], ref[k]) for k in ref)
        assert pool.head(name).shape == (7, 16)
    untrusted = open_pool(str(model_dir))  # opening reads nothing; the first read needs trust
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        untrusted.base_state_dict()


def test_tall_masks_layout_is_discovered(tiny_models, tmp_path):
    base, fts = tiny_models
    model_dir = tmp_path / "tiny"
    for name in TASKS:
        folder = model_dir / f"{name}Val"
        folder.mkdir(parents=True)
        W.write_tall_masks_state_dict(fts[name], folder / "nonlinear_finetuned.pt")
        W.write_tall_masks_state_dict(base, folder / "nonlinear_zeroshot.pt")
        W.write_head_pickle(torch.randn(10, 16), model_dir / f"head_{name}Val.pt", tall_masks=True)
    pool = open_pool(str(model_dir), trust_pickle=True)
    assert pool.spec.layout == "tall_masks" and pool.task_names == PAPER_ORDER
    assert [t.dataset for t in pool.spec.tasks] == [f"{n}Val" for n in PAPER_ORDER]
    ts = TaskSet.from_pool(pool)
    key = "visual.transformer.resblocks.0.attn.in_proj_weight"
    expected = W.canonical_visual(fts["SVHN"])[key] - W.canonical_visual(base)[key]
    torch.testing.assert_close(ts.task_matrix("SVHN", key), expected)
    assert pool.head("EuroSAT").shape == (10, 16)
    # state dicts load without trust; the pickled heads do not
    plain = open_pool(str(model_dir))
    assert len(plain.finetuned_state_dict("MNIST")) == len(W.canonical_visual(base))
    with pytest.raises(UntrustedPickleError):
        plain.head("MNIST")
    # no zero-shot model anywhere: a named error
    for name in TASKS:
        (model_dir / f"{name}Val" / "nonlinear_zeroshot.pt").unlink()
    with pytest.raises(MissingTaskError, match="nonlinear_zeroshot"):
        discover_pool(model_dir)


def test_missing_tasks_and_bad_pool_files(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_open_clip_pt(base, tmp_path / "base.pt")
    W.write_open_clip_pt(fts["MNIST"], tmp_path / "mnist.pt")
    pool_file = _yaml(tmp_path / "p.yaml", {"base": "base.pt", "tasks": [
        {"name": "MNIST", "checkpoint": "mnist.pt"}, {"name": "SVHN", "checkpoint": "svhn.pt"}]})
    with pytest.raises(MissingTaskError, match=r"SVHN.*svhn\.pt"):
        open_pool(str(pool_file))
    ok = _yaml(tmp_path / "ok.yaml", {"base": "base.pt", "tasks": [{"name": "MNIST", "checkpoint": "mnist.pt"}]})
    pool = open_pool(str(ok))
    with pytest.raises(MissingTaskError, match="no task 'Cars'"):
        pool.finetuned_state_dict("Cars")
    with pytest.raises(KeyError):  # MissingTaskError is also a KeyError
        pool.head("Cars")
    for bad, match in [({"tasks": []}, "base"), ({"base": "base.pt", "tasks": []}, "empty"),
                       ({"base": "base.pt", "tasks": [{"name": "X"}]}, "checkpoint"),
                       ({"base": "base.pt", "tasks": [{"checkpoint": "mnist.pt", "colour": 1, "name": "X"}]}, "colour")]:
        with pytest.raises(PoolConfigError, match=match):
            open_pool(str(_yaml(tmp_path / "bad.yaml", bad)))
    with pytest.raises(PoolConfigError, match="no such pool"):
        open_pool(str(tmp_path / "nowhere"))
    with pytest.raises(PoolConfigError, match="no checkpoint layout"):
        open_pool(str(tmp_path))


def test_architecture_mismatches_are_named(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_open_clip_pt(base, tmp_path / "base.pt")
    W.write_open_clip_pt(W.make_clip(5, W.TINY_WIDE), tmp_path / "wide.pt")
    pool = open_pool(str(_yaml(tmp_path / "p.yaml", {"base": "base.pt", "tasks": [
        {"name": "MNIST", "checkpoint": "wide.pt"}]})))
    with pytest.raises(ArchitectureMismatchError, match=rf"wide\.pt is a {W.TINY_WIDE}.*{W.TINY}"):
        pool.finetuned_state_dict("MNIST")
    declared = open_pool(str(_yaml(tmp_path / "q.yaml", {"base": "base.pt", "architecture": "ViT-B-32", "tasks": [
        {"name": "MNIST", "checkpoint": "base.pt"}]})))
    with pytest.raises(ArchitectureMismatchError, match="declares architecture ViT-B-32"):
        declared.base_state_dict()


def test_missing_keys_and_shapes_name_file_and_key(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_open_clip_pt(base, tmp_path / "base.pt")
    state = fts["MNIST"].state_dict()
    del state["visual.transformer.resblocks.1.mlp.c_fc.bias"]
    torch.save(state, tmp_path / "missing.pt")
    state = fts["MNIST"].state_dict()
    state["visual.ln_post.weight"] = torch.ones(33)
    torch.save(state, tmp_path / "shape.pt")
    pool = open_pool(str(_yaml(tmp_path / "p.yaml", {"base": "base.pt", "tasks": [
        {"name": "A", "checkpoint": "missing.pt"}, {"name": "B", "checkpoint": "shape.pt"}]})))
    with pytest.raises(MissingKeyError, match=r"missing\.pt.*resblocks\.1\.mlp\.c_fc\.bias"):
        pool.finetuned_state_dict("A")
    with pytest.raises(ShapeMismatchError, match=r"shape\.pt.*ln_post\.weight.*\(33,\).*\(32,\)"):
        pool.finetuned_state_dict("B")


def test_zero_shot_head_needs_a_text_tower(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_tall_masks_state_dict(base, tmp_path / "zs.pt")  # the text transformer is deleted in this format
    W.write_tall_masks_state_dict(fts["MNIST"], tmp_path / "ft.pt")
    W.write_open_clip_pt(base, tmp_path / "clip.pt")
    pool = open_pool(str(_yaml(tmp_path / "p.yaml", {"base": "zs.pt", "tasks": [
        {"name": "MNIST", "checkpoint": "ft.pt"}]})))
    with pytest.raises(CheckpointError, match="text_checkpoint"):
        pool.head("MNIST")
    pool = open_pool(str(_yaml(tmp_path / "q.yaml", {"base": "zs.pt", "text_checkpoint": "clip.pt", "tasks": [
        {"name": "Mystery", "checkpoint": "ft.pt"}, {"name": "Named", "checkpoint": "ft.pt",
                                                      "class_names": ["cat", "dog", "cow"]}]})))
    assert pool.head("Named").shape == (3, 16)
    with pytest.raises(CheckpointError, match="not one of the 20 benchmarks"):
        pool.head("Mystery")


def test_half_precision_task_is_cast_to_the_base_dtype(tiny_models, tmp_path):
    base, fts = tiny_models
    W.write_open_clip_pt(base, tmp_path / "base.pt")
    torch.save({k: v.half() for k, v in fts["MNIST"].state_dict().items()}, tmp_path / "half.pt")
    pool = open_pool(str(_yaml(tmp_path / "p.yaml", {"base": "base.pt", "tasks": [
        {"name": "MNIST", "checkpoint": "half.pt"}]})))
    state = pool.finetuned_state_dict("MNIST")
    assert all(v.dtype == torch.float32 for v in state.values())
    ref = W.canonical_visual(fts["MNIST"])
    torch.testing.assert_close(state["visual.proj"], ref["visual.proj"].half().float())
