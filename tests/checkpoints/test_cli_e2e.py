"""End to end through the CLI: a ViT-B-32-shaped pool (random weights, 3 tasks, three checkpoint formats, one of
them pickled) loads, merges and evaluates on generated ImageFolders (issue 5, "Done when")."""
from __future__ import annotations

import csv

import ckpt_writers as W
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.slow

CLASSES = {"Shapes": ["circle", "square", "triangle"], "Colours": ["red", "green"], "Textures": ["dots", "stripes"]}


def _image_folder(root, classes, n_train=4, n_test=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = (torch.rand(40, 40, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def vit_b32_pool(tmp_path_factory):
    import open_clip

    root = tmp_path_factory.mktemp("vit_b32_pool")
    torch.manual_seed(0)
    base = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(root / "zeroshot.safetensors"))
    tasks = list(CLASSES)
    fts = {t: W.finetune(base, seed, scale=0.002, keep_text=False) for seed, t in enumerate(tasks, start=1)}
    # three formats: an open_clip image tower (safetensors), a tall_masks state dict, a task_vectors pickle
    save_file({f"visual.{k}": v.contiguous() for k, v in fts["Shapes"].visual.state_dict().items()},
              str(root / "shapes.safetensors"))
    W.write_tall_masks_state_dict(fts["Colours"], root / "colours.pt")
    base_visual = W.canonical_visual(base)
    deltas = {t: {k: v - base_visual[k] for k, v in W.canonical_visual(m).items()} for t, m in fts.items()}
    W.write_task_vectors_pickle(fts["Textures"], root / "textures.pt", copy_model=False)
    for seed, (task, names) in enumerate(CLASSES.items()):
        _image_folder(root / "data" / task.lower(), names, seed=seed)
    pool_file = root / "pool.yaml"
    pool_file.write_text(yaml.safe_dump({
        "name": "vit-b-32-e2e", "base": "zeroshot.safetensors", "quick_gelu": False, "data_root": "data",
        "tasks": [
            {"name": "Shapes", "checkpoint": "shapes.safetensors", "class_names": CLASSES["Shapes"], "data": "shapes"},
            {"name": "Colours", "checkpoint": "colours.pt", "class_names": CLASSES["Colours"], "data": "colours"},
            {"name": "Textures", "checkpoint": "textures.pt", "class_names": CLASSES["Textures"], "data": "textures",
             "templates": ["a photo of {c}.", "a close-up of {c}."]},
        ],
    }, sort_keys=False))
    return pool_file, base_visual, deltas


def test_vit_b32_pool_loads_merges_and_evaluates_through_the_cli(vit_b32_pool, tmp_path, capsys):
    from spectral.cli import main

    pool_file, base_visual, deltas = vit_b32_pool
    cache = tmp_path / "cache"

    # the pickled task is refused without the flag, with the way to allow it
    assert main(["merge", "--pool", str(pool_file), "--method", "task_arithmetic", "--alpha", "0.3",
                 "-o", str(tmp_path / "refused.safetensors"), "--device", "cpu", "--cache-dir", str(cache)]) == 2
    assert "--trust-pickle" in capsys.readouterr().err

    out = tmp_path / "merged.safetensors"
    assert main(["merge", "--pool", str(pool_file), "--trust-pickle", "--method", "task_arithmetic",
                 "--alpha", "0.3", "-o", str(out), "--device", "cpu", "--cache-dir", str(cache)]) == 0
    merged = load_file(str(out))
    assert set(merged) == set(base_visual)
    key = "visual.transformer.resblocks.5.attn.in_proj_weight"
    expected = base_visual[key] + 0.3 * sum(d[key] for d in deltas.values())
    torch.testing.assert_close(merged[key], expected, rtol=1e-5, atol=1e-6)

    table = tmp_path / "eval.csv"
    assert main(["eval", "--pool", str(pool_file), "--trust-pickle", "--method", "task_arithmetic", "--alpha", "0.3",
                 "--device", "cpu", "--cache-dir", str(cache), "--csv", str(table)]) == 0
    printed = capsys.readouterr().out
    assert "vit-b-32-e2e" in printed and "absolute" in printed
    rows = list(csv.DictReader(table.open()))
    assert [r["task"] for r in rows] == list(CLASSES)
    for r in rows:
        for col in ("accuracy", "finetuned", "zeroshot"):
            assert 0.0 <= float(r[col]) <= 1.0
