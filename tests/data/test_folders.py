"""Data sets from local folders: layouts, CLIP preprocessing, the reference validation split."""
from __future__ import annotations

import struct

import pytest
import torch
from PIL import Image
from torch.utils.data import random_split

from spectral.data.folders import (
    DatasetError,
    clip_preprocess,
    open_folder_dataset,
    split_sizes,
    train_val_split,
)


def _write_images(folder, n, size=20, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        arr = (torch.rand(size, size + 4, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"img_{i:03d}.png")


def _image_folder(root, classes, counts):
    for split, n in counts.items():
        for j, c in enumerate(classes):
            _write_images(root / split / c, n, seed=j)
    return root


def test_split_sizes_follow_the_reference():
    assert split_sizes(50) == (45, 5)
    assert split_sizes(59) == (54, 5)  # int(5.9) = 5
    assert split_sizes(60_000) == (55_000, 5000)  # capped at 5000
    assert split_sizes(73_257) == (68_257, 5000)
    with pytest.raises(DatasetError):
        split_sizes(5)


def test_image_folder_with_generated_val_split(tmp_path):
    root = _image_folder(tmp_path / "ds", ["cat", "dog", "owl"], {"train": 17, "test": 3})
    tf = clip_preprocess(32)
    train = open_folder_dataset(root, "train", transform=tf)
    val = open_folder_dataset(root, "val", transform=tf)
    test = open_folder_dataset(root, "test", transform=tf)
    assert (len(train), len(val), len(test)) == (46, 5, 9)  # 51 training images: val = int(5.1) = 5
    # exactly torch's random_split with seed 0, as the reference code does it
    ref_train, ref_val = random_split(range(51), [46, 5], generator=torch.Generator().manual_seed(0))
    assert list(val.base.indices) == list(ref_val.indices) and list(train.base.indices) == list(ref_train.indices)
    image, label = val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert val.classes == ["cat", "dog", "owl"]
    assert set(train.base.indices).isdisjoint(val.base.indices)


def test_existing_val_folder_is_used_and_train_val_only_layout_tests_on_val(tmp_path):
    full = _image_folder(tmp_path / "my_splits", ["a", "b"], {"train": 6, "val": 2, "test": 3})
    assert len(open_folder_dataset(full, "train", transform=None)) == 12
    assert len(open_folder_dataset(full, "val", transform=None)) == 4
    assert len(open_folder_dataset(full, "test", transform=None)) == 6
    dtd_like = _image_folder(tmp_path / "textures", ["a", "b"], {"train": 10, "val": 3})
    assert len(open_folder_dataset(dtd_like, "test", transform=None)) == 6  # the reference tests on val/
    assert len(open_folder_dataset(dtd_like, "val", transform=None)) == 2  # int(0.1 · 20)
    assert len(open_folder_dataset(dtd_like, "train", transform=None)) == 18


def test_labels_follow_the_class_names_order(tmp_path):
    root = _image_folder(tmp_path / "fer", ["angry", "happy", "sad"], {"train": 10, "test": 1})
    ds = open_folder_dataset(root, "test", transform=None, class_names=["sad", "angry", "happy"])
    assert [ds[i][1] for i in range(3)] == [1, 2, 0]  # folders angry, happy, sad → class-name order
    same = open_folder_dataset(root, "test", transform=None, class_names=["angry", "happy", "sad"])
    assert same.label_map is None


def test_clip_preprocessing_of_the_architecture(tmp_path):
    root = _image_folder(tmp_path / "ds", ["x", "y"], {"train": 10, "test": 1})
    ds = open_folder_dataset(root, "test", transform=clip_preprocess("ViT-B-32"))
    image, _ = ds[0]
    assert image.shape == (3, 224, 224)
    # CLIP normalisation: a mid-grey image maps near (0.5 - mean) / std
    grey = Image.new("L", (50, 40), color=128)
    out = clip_preprocess(16)(grey)
    assert out.shape == (3, 16, 16)
    torch.testing.assert_close(out[:, 0, 0], (128 / 255 - torch.tensor([0.48145466, 0.4578275, 0.40821073]))
                               / torch.tensor([0.26862954, 0.26130258, 0.27577711]), rtol=0, atol=1e-4)


def test_resisc45_split_files_and_its_class_count(tmp_path):
    base = tmp_path / "resisc45"
    for c in ("airplane", "beach"):
        _write_images(base / "NWPU-RESISC45" / c, 12)
    files = sorted(p.name for p in (base / "NWPU-RESISC45" / "airplane").iterdir())
    (base / "resisc45-train.txt").write_text("\n".join(files[:10]) + "\n")
    (base / "resisc45-test.txt").write_text("\n".join(files[10:]) + "\n")
    # two class folders are not RESISC45's 45 (the full layout is read in tests/data/test_layouts.py)
    for root in (base, tmp_path):
        with pytest.raises(DatasetError, match="RESISC45.*2 classes, RESISC45 has 45"):
            open_folder_dataset(root, "test", transform=None, dataset="RESISC45")
    # and a folder that is not named after a benchmark is never guessed to be RESISC45
    with pytest.raises(DatasetError, match="no recognised data layout"):
        open_folder_dataset(tmp_path, "test", transform=None)


def _write_idx(path, array_bytes, dims, kind):
    magic = {"images": 0x00000803, "labels": 0x00000801}[kind]
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + array_bytes)


def test_torchvision_mnist_layout_without_download(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        images = (torch.rand(n, 28, 28, generator=g) * 255).to(torch.uint8)
        labels = torch.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images.numpy().tobytes(), (n, 28, 28), "images")
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.to(torch.uint8).numpy().tobytes(), (n,), "labels")
    tf = clip_preprocess(32)
    for folder in (tmp_path, tmp_path / "MNIST"):
        test = open_folder_dataset(folder, "test", transform=tf, dataset="MNISTVal")
        assert len(test) == 10
    val = open_folder_dataset(tmp_path, "val", transform=tf, dataset="MNIST")
    train = open_folder_dataset(tmp_path, "train", transform=tf, dataset="MNIST")
    assert (len(train), len(val)) == (27, 3)
    image, label = val[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int)  # grey digits become RGB


def test_missing_or_unrecognised_folders(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_folder_dataset(tmp_path / "nope", "test", transform=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no recognised data layout"):
        open_folder_dataset(tmp_path / "empty", "test", transform=None)
    with pytest.raises(DatasetError, match="CIFAR10: no CIFAR10 data at .*cifar-10-batches-py/data_batch_1"):
        open_folder_dataset(tmp_path / "empty", "test", transform=None, dataset="CIFAR10")
    with pytest.raises(DatasetError, match="split"):
        open_folder_dataset(tmp_path / "empty", "holdout", transform=None)  # type: ignore[arg-type]


def test_train_val_split_is_deterministic():
    a = train_val_split(list(range(100)))
    b = train_val_split(list(range(100)))
    assert list(a[1].indices) == list(b[1].indices) and len(a[1]) == 10
