"""The papers' 20 data sets found under one data location, in their real file formats, read item by item as
torchvision (or the papers' own ImageFolder code) reads them; a folder of one data set is never served to another."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from torchvision.datasets import ImageFolder

sys.path.insert(0, str(Path(__file__).parent))

import data_fakes as F

from spectral.data.folders import DatasetError, open_folder_dataset
from spectral.data.layouts import DATASETS, data_status, find_data, identify
from spectral.data.templates import ALL_DATASETS, CLASS_NAMES


@pytest.fixture(scope="module")
def location(tmp_path_factory):
    loc = tmp_path_factory.mktemp("papers_data")
    return loc, F.write_location(loc)


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the MD5 of CIFAR, STL10, SVHN, Flowers102 and FER2013 files: the fakes are not the real
    files, so its reference classes read them with that check off."""
    import torchvision.datasets.fer2013 as fer
    import torchvision.datasets.flowers102 as flowers
    from torchvision.datasets import cifar, stl10, svhn

    for mod in (cifar, stl10, svhn, flowers, fer):
        monkeypatch.setattr(mod, "check_integrity", lambda *a, **k: True)


def _resisc_test(loc):
    names = set((loc / "resisc45" / "resisc45-test.txt").read_text().split())
    return ImageFolder(str(loc / "resisc45" / "NWPU-RESISC45"), is_valid_file=lambda p: Path(p).name in names)


#: the test split as the papers' code builds it (root as they pass it), where one exists
REFERENCE = {
    "Cars": lambda loc: tvd.StanfordCars(str(loc), split="test"),
    "DTD": lambda loc: ImageFolder(str(loc / "dtd" / "val")),
    "EuroSAT": lambda loc: ImageFolder(str(loc / "EuroSAT_splits" / "test")),
    "GTSRB": lambda loc: tvd.GTSRB(str(loc), split="test"),
    "MNIST": lambda loc: tvd.MNIST(str(loc), train=False),
    "RESISC45": _resisc_test,
    "SUN397": lambda loc: ImageFolder(str(loc / "sun397" / "val")),
    "SVHN": lambda loc: tvd.SVHN(str(loc / "svhn"), split="test"),
    "CIFAR100": lambda loc: tvd.CIFAR100(str(loc), train=False),
    "STL10": lambda loc: tvd.STL10(str(loc / "stl10"), split="test"),
    "Flowers102": lambda loc: tvd.Flowers102(str(loc / "flowers102"), split="test"),
    "OxfordIIITPet": lambda loc: tvd.OxfordIIITPet(str(loc / "OxfordIIITPet"), split="test"),
    "PCAM": lambda loc: tvd.PCAM(str(loc / "PCAM"), split="test"),
    "EMNIST": lambda loc: tvd.EMNIST(str(loc / "EMNIST"), split="digits", train=False),
    "CIFAR10": lambda loc: tvd.CIFAR10(str(loc), train=False),
    "Food101": lambda loc: tvd.Food101(str(loc / "food101"), split="test"),
    "FashionMNIST": lambda loc: tvd.FashionMNIST(str(loc / "FashionMNIST"), train=False),
    "RenderedSST2": lambda loc: tvd.RenderedSST2(str(loc / "RenderedSST2"), split="test"),
    "KMNIST": lambda loc: tvd.KMNIST(str(loc / "KMNIST"), train=False),
}
TRAIN_REFERENCE = {
    "MNIST": lambda loc: tvd.MNIST(str(loc), train=True),
    "CIFAR10": lambda loc: tvd.CIFAR10(str(loc), train=True),
    "CIFAR100": lambda loc: tvd.CIFAR100(str(loc), train=True),
    "STL10": lambda loc: tvd.STL10(str(loc / "stl10"), split="train"),
    "Cars": lambda loc: tvd.StanfordCars(str(loc), split="train"),
}


def _pixels(image):
    return np.asarray(image)


def _labels(ds):
    return [ds[i][1] for i in range(len(ds))]


def test_every_benchmark_has_a_layout():
    assert list(DATASETS) == ALL_DATASETS


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_found_under_the_data_location_and_read_item_by_item(location, name, no_md5):
    loc, fakes = location
    fake = fakes[name]
    test = open_folder_dataset(loc, "test", transform=None, dataset=name)
    assert len(test) == len(fake.test)
    assert _labels(test) == fake.test
    assert len(test.classes) == len(CLASS_NAMES[name])
    if fake.classes is not None:
        assert list(test.classes) == fake.classes
    train = open_folder_dataset(loc, "train", transform=None, dataset=name)
    val = open_folder_dataset(loc, "val", transform=None, dataset=name)
    if name == "EuroSAT":  # its own val/ folder
        assert len(train) == len(fake.train)
    else:  # val carved out of train with the reference split
        assert sorted(_labels(train) + _labels(val)) == sorted(fake.train)
    # the reference reader gives the same items, in the same order
    if name in REFERENCE:
        ref = REFERENCE[name](loc)
        assert len(ref) == len(test)
        for i in range(len(ref)):
            (a, ya), (b, yb) = test[i], ref[i]
            assert ya == yb, (name, i)
            np.testing.assert_array_equal(_pixels(a), _pixels(b), err_msg=f"{name}[{i}]")
        ref_classes = getattr(ref, "classes", None)
        if ref_classes is not None and name not in ("OxfordIIITPet",):  # Pets lists only the classes present
            assert list(test.classes) == list(ref_classes)
    if name in TRAIN_REFERENCE:
        ref_train = TRAIN_REFERENCE[name](loc)
        assert len(train) + len(val) == len(ref_train)
        j = train.base.indices[0]
        np.testing.assert_array_equal(_pixels(train[0][0]), _pixels(ref_train[j][0]))
        assert train[0][1] == ref_train[j][1]


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_found_from_its_own_folder_and_by_discovery(location, name):
    loc, fakes = location
    own = open_folder_dataset(fakes[name].folder, "test", transform=None, dataset=name)
    assert _labels(own) == fakes[name].test
    root = find_data(name, loc)
    assert root is not None
    assert _labels(open_folder_dataset(root, "test", transform=None, dataset=name)) == fakes[name].test
    status = data_status(name, loc, under_location=True)
    assert status["found"] and status["images"] == len(fakes[name].test)


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_a_folder_of_another_data_set_is_refused_by_name(location, name):
    _, fakes = location
    other = ALL_DATASETS[(ALL_DATASETS.index(name) + 1) % len(ALL_DATASETS)]
    with pytest.raises(DatasetError, match=name):
        open_folder_dataset(fakes[other].folder, "test", transform=None, dataset=name)


def test_image_folders_of_another_benchmark_are_refused(location):
    loc, _ = location
    # EuroSAT's class folders given to MNIST: the same class count (10) does not make them MNIST; DTD's to EuroSAT
    with pytest.raises(DatasetError, match="EuroSAT"):
        open_folder_dataset(loc / "EuroSAT_splits", "test", transform=None, dataset="MNIST")
    with pytest.raises(DatasetError, match="DTD.*47 classes|DTD"):
        open_folder_dataset(loc / "dtd", "test", transform=None, dataset="EuroSAT")


def test_missing_data_names_the_data_set_folder_and_files(tmp_path):
    loc = tmp_path / "data"
    F.write_location(loc, ["RESISC45"])
    with pytest.raises(DatasetError) as err:
        open_folder_dataset(loc, "test", transform=None, dataset="CIFAR10")
    text = str(err.value)
    assert "CIFAR10" in text and str(loc) in text and "cifar-10-batches-py/data_batch_1" in text
    assert "RESISC45" in text  # what the folder does hold, never used for CIFAR10
    assert identify(loc) == ["RESISC45"]
    assert find_data("CIFAR10", loc) is None
    status = data_status("CIFAR10", loc, under_location=True)
    assert not status["found"] and "cifar-10-batches-py" in status["detail"]


def test_fer2013_image_folders_follow_the_label_order(location):
    loc, fakes = location
    test = open_folder_dataset(loc / "fer2013", "test", transform=None, dataset="FER2013")
    # folders angry, disgust, fear, happy, neutral, sad, surprise → labels 0 1 2 3 6 4 5
    assert test.label_map == [0, 1, 2, 3, 6, 4, 5]
    assert _labels(test) == fakes["FER2013"].test


def test_fer2013_csv_both_forms(tmp_path, no_md5):
    full = tmp_path / "full"
    fake = F.fer2013_csv(full, "fer2013")
    test = open_folder_dataset(full, "test", transform=None, dataset="FER2013")
    ref = tvd.FER2013(str(full / "FER2013"), split="test")
    assert _labels(test) == fake.test == [ref[i][1] for i in range(len(ref))]
    for i in range(len(ref)):
        np.testing.assert_array_equal(_pixels(test[i][0]), _pixels(ref[i][0]))
    train = open_folder_dataset(full, "train", transform=None, dataset="FER2013")
    assert len(train) + len(open_folder_dataset(full, "val", transform=None, dataset="FER2013")) == len(fake.train)

    kaggle = tmp_path / "kaggle"
    fake = F.fer2013_csv(kaggle, "kaggle")
    ref_train = tvd.FER2013(str(kaggle / "FER2013"), split="train")
    train = open_folder_dataset(kaggle, "train", transform=None, dataset="FER2013")
    val = open_folder_dataset(kaggle, "val", transform=None, dataset="FER2013")
    assert len(train) + len(val) == len(ref_train) == len(fake.train)
    with pytest.raises(DatasetError, match=r"FER2013: .*test\.csv has no labels"):
        open_folder_dataset(kaggle, "test", transform=None, dataset="FER2013")


def test_cifar_batches_refuse_other_pickled_globals(tmp_path):
    import os
    import pickle

    loc = tmp_path / "data"
    F.cifar10(loc)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with open(loc / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(DatasetError, match="refusing global"):
        open_folder_dataset(loc, "test", transform=None, dataset="CIFAR10")


def test_task_data_status_of_a_pool(location, tmp_path):
    """The Overview page's table: per task, found or not, with the number of test images."""
    from spectral.checkpoints.pool import CheckpointPool, PoolSpec, TaskSpec
    from spectral.data.status import task_data_status

    loc, fakes = location
    for name in ("base", "a", "b", "c"):
        (tmp_path / f"{name}.pt").write_bytes(b"")  # never read: only the data is looked at

    class Pool(CheckpointPool):
        architecture = "ViT-B-32"

    spec = PoolSpec(base=tmp_path / "base.pt", data_root=loc, tasks=[
        TaskSpec("CIFAR10", tmp_path / "a.pt", dataset="CIFAR10"),
        TaskSpec("MNIST", tmp_path / "b.pt", dataset="MNIST", data=fakes["SVHN"].folder),  # SVHN's folder: refused
        TaskSpec("Custom", tmp_path / "c.pt"),  # not a benchmark, no folder named after it under the location
    ])
    rows = {r.task: r for r in task_data_status(Pool(spec))}
    assert rows["CIFAR10"].found and rows["CIFAR10"].images == len(fakes["CIFAR10"].test)
    assert rows["CIFAR10"].folder == str(loc) and rows["CIFAR10"].dataset == "CIFAR10"
    assert rows["CIFAR10"].detail == "CIFAR-10 python batches"
    assert not rows["MNIST"].found and rows["MNIST"].images is None and "MNIST" in rows["MNIST"].detail
    assert not rows["Custom"].found and "does not exist" in rows["Custom"].detail


def test_the_guide_table_lists_every_data_set_with_its_folder():
    readme = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| ")}
    for name, info in DATASETS.items():
        layout = info.layouts[0]
        folder = layout.roots[0] or layout.expected[0].split("/")[0]
        assert name in rows, name
        assert f"`{folder}/" in rows[name], (name, folder)


def test_generic_image_folders_are_not_taken_for_a_benchmark(tmp_path):
    """Stand-in folders named after a benchmark (as bench/eval_command.py writes them): refused as SUN397 with the
    class count, not said to be EuroSAT or FER2013; read as plain image folders under another data set name."""
    for split in ("train", "test"):
        for c in range(3):
            F._image(tmp_path / "SUN397" / split / f"c{c}" / "0.png", c, size=4)
    assert identify(tmp_path / "SUN397") == []
    with pytest.raises(DatasetError, match=r"has 3 classes, SUN397 has 397: not this task's data$"):
        open_folder_dataset(tmp_path / "SUN397", "test", transform=None, dataset="SUN397")
    assert len(open_folder_dataset(tmp_path / "SUN397", "test", transform=None, dataset="SUN397-standin")) == 3
