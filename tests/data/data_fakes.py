"""Tiny fakes of the papers' 20 data sets in their real file formats, under one data location laid out as the
task_vectors / tall_masks code (and torchvision) expects it.

Every writer takes the data location ``loc`` and returns a :class:`Fake`: the folder it wrote, and the labels of
the train and test splits in the order the data set lists them. Images are tiny (8×8 for image files; the fixed
sizes of the binary formats: 28×28 idx, 32×32 CIFAR/SVHN, 96×96 STL10/PCAM, 48×48 FER2013).
"""
from __future__ import annotations

import csv
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from spectral.data.templates import _RESISC45_FOLDERS, CLASS_NAMES, EUROSAT_FOLDERS, SUN397_FOLDERS


@dataclass
class Fake:
    folder: Path
    train: list[int]
    test: list[int]
    classes: list[str] | None = None


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _image(path: Path, seed: int, size: int = 8, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _rng(seed).integers(0, 256, size=(size, size + 2, 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def _labels(n: int, classes: int, seed: int) -> list[int]:
    """n labels covering as many classes as fit, in a shuffled order."""
    base = [i % classes for i in range(n)]
    _rng(seed).shuffle(base)
    return [int(x) for x in base]


# --- idx (MNIST family) ----------------------------------------------------------------------------------------
def _idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = {1: 0x00000801, 3: 0x00000803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist_like(raw: Path, names: dict[str, tuple[str, str]], n_train: int = 12, n_test: int = 5,
                seed: int = 0) -> tuple[list[int], list[int]]:
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = names[split]
        labels = _labels(n, 10, seed + len(split))
        _idx(raw / images_name, _rng(seed + n).integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        _idx(raw / labels_name, np.asarray(labels, dtype=np.uint8))
        out.append(labels)
    return out[0], out[1]


_MNIST_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def mnist(loc: Path) -> Fake:
    """``MNIST/raw/*-ubyte``: torchvision's MNIST with root = the data location (as the papers pass it)."""
    train, test = _mnist_like(loc / "MNIST" / "raw", _MNIST_NAMES, seed=1)
    return Fake(loc / "MNIST", train, test)


def fashion_mnist(loc: Path) -> Fake:
    """``FashionMNIST/FashionMNIST/raw``: the papers pass root = <location>/FashionMNIST."""
    train, test = _mnist_like(loc / "FashionMNIST" / "FashionMNIST" / "raw", _MNIST_NAMES, seed=2)
    return Fake(loc / "FashionMNIST", train, test)


def kmnist(loc: Path) -> Fake:
    train, test = _mnist_like(loc / "KMNIST" / "KMNIST" / "raw", _MNIST_NAMES, seed=3)
    return Fake(loc / "KMNIST", train, test)


def emnist(loc: Path) -> Fake:
    names = {"train": ("emnist-digits-train-images-idx3-ubyte", "emnist-digits-train-labels-idx1-ubyte"),
             "test": ("emnist-digits-test-images-idx3-ubyte", "emnist-digits-test-labels-idx1-ubyte")}
    train, test = _mnist_like(loc / "EMNIST" / "EMNIST" / "raw", names, seed=4)
    return Fake(loc / "EMNIST", train, test)


# --- CIFAR (pickled batches, directly under the data location) -------------------------------------------------
def _pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar10(loc: Path) -> Fake:
    folder = loc / "cifar-10-batches-py"
    train: list[int] = []
    for b in range(1, 6):
        labels = _labels(3, 10, 10 + b)
        data = _rng(20 + b).integers(0, 256, size=(3, 3072), dtype=np.uint8)
        _pickle(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": labels,
                                            "data": data, "filenames": [f"{b}_{i}.png" for i in range(3)]})
        train += labels
    test = _labels(6, 10, 30)
    _pickle(folder / "test_batch", {"labels": test, "data": _rng(31).integers(0, 256, (6, 3072), dtype=np.uint8)})
    _pickle(folder / "batches.meta", {"label_names": list(CLASS_NAMES["CIFAR10"]), "num_cases_per_batch": 3})
    return Fake(folder, train, test, list(CLASS_NAMES["CIFAR10"]))


def cifar100(loc: Path) -> Fake:
    folder = loc / "cifar-100-python"
    train, test = _labels(15, 100, 40), _labels(6, 100, 41)
    for name, labels, seed in (("train", train, 42), ("test", test, 43)):
        _pickle(folder / name, {"fine_labels": labels, "coarse_labels": [y // 5 for y in labels],
                                "data": _rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)})
    _pickle(folder / "meta", {"fine_label_names": list(CLASS_NAMES["CIFAR100"]),
                              "coarse_label_names": [f"super{i}" for i in range(20)]})
    return Fake(folder, train, test, list(CLASS_NAMES["CIFAR100"]))


# --- .mat (SVHN, Cars, Flowers102) -----------------------------------------------------------------------------
def svhn(loc: Path) -> Fake:
    from scipy.io import savemat

    folder = loc / "svhn"
    folder.mkdir(parents=True)
    out = []
    for split, n in (("train", 12), ("test", 5)):
        labels = _labels(n, 10, 50 + n)
        x = _rng(51 + n).integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = np.asarray([10 if v == 0 else v for v in labels], dtype=np.uint8)[:, None]  # SVHN's 0 is label 10
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        out.append(labels)
    return Fake(folder, out[0], out[1])


def _struct_array(rows: list[dict]) -> np.ndarray:
    fields = list(rows[0])
    arr = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, r in enumerate(rows):
        for f in fields:
            arr[0, i][f] = np.array([[r[f]]]) if not isinstance(r[f], str) else np.array([r[f]])
    return arr


def cars(loc: Path) -> Fake:
    """``stanford_cars/``: devkit ``.mat`` files, ``cars_train/``, ``cars_test/`` and the labelled test annotations."""
    from scipy.io import savemat

    base = loc / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.empty((1, 196), dtype=object)
    names[0, :] = list(CLASS_NAMES["Cars"])
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    out = []
    for split, n, target in (("train", 10, base / "devkit" / "cars_train_annos.mat"),
                             ("test", 4, base / "cars_test_annos_withlabels.mat")):
        labels = _labels(n, 196, 60 + n)
        rows = []
        for i, y in enumerate(labels):
            fname = f"{i + 1:05d}.jpg"
            _image(base / f"cars_{split}" / fname, 61 + i + n)
            rows.append({"bbox_x1": 1, "bbox_y1": 1, "bbox_x2": 6, "bbox_y2": 6, "class": y + 1, "fname": fname})
        savemat(target, {"annotations": _struct_array(rows)})
        out.append(labels)
    return Fake(base, out[0], out[1], list(CLASS_NAMES["Cars"]))


def flowers102(loc: Path) -> Fake:
    """``flowers102/flowers-102/``: ``jpg/``, ``imagelabels.mat``, ``setid.mat`` (papers: root = <loc>/flowers102)."""
    from scipy.io import savemat

    base = loc / "flowers102" / "flowers-102"
    n = 20
    labels = _labels(n, 102, 70)
    for i in range(n):
        _image(base / "jpg" / f"image_{i + 1:05d}.jpg", 71 + i)
    savemat(base / "imagelabels.mat", {"labels": np.asarray([labels], dtype=np.uint8) + 1})
    trn, val, tst = [3, 1, 7, 5, 9, 11, 13, 15, 17, 19], [2, 4], [16, 8, 10, 12]
    savemat(base / "setid.mat", {"trnid": np.asarray([trn]), "valid": np.asarray([val]),
                                 "tstid": np.asarray([tst])})
    return Fake(base.parent, [labels[i - 1] for i in trn], [labels[i - 1] for i in tst])


# --- GTSRB (.ppm class folders + the test CSV) -----------------------------------------------------------------
def gtsrb(loc: Path) -> Fake:
    base = loc / "gtsrb"
    train = []
    for c in range(43):  # every class folder holds at least one image
        folder = base / "GTSRB" / "Training" / f"{c:05d}"
        for i in range(2 if c < 2 else 1):
            _image(folder / f"00000_{i:05d}.ppm", 80 + c + i)
            train.append(c)
        (folder / f"GT-{c:05d}.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n")
    test = _labels(5, 43, 81)
    rows = []
    for i, y in enumerate(test):
        name = f"{i:05d}.ppm"
        _image(base / "GTSRB" / "Final_Test" / "Images" / name, 82 + i)
        rows.append({"Filename": name, "Width": 8, "Height": 8, "Roi.X1": 1, "Roi.Y1": 1, "Roi.X2": 6,
                     "Roi.Y2": 6, "ClassId": y})
    with open(base / "GT-final_test.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        w.writeheader()
        w.writerows(rows)
    return Fake(base, train, test)


# --- STL10 (binaries) ------------------------------------------------------------------------------------------
def stl10(loc: Path) -> Fake:
    base = loc / "stl10" / "stl10_binary"
    base.mkdir(parents=True)
    out = []
    for split, n in (("train", 12), ("test", 4)):
        labels = _labels(n, 10, 90 + n)
        (base / f"{split}_X.bin").write_bytes(_rng(91 + n).integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tobytes())
        (base / f"{split}_y.bin").write_bytes(bytes(y + 1 for y in labels))  # labels 1..10 on disk
        out.append(labels)
    (base / "class_names.txt").write_text("\n".join(CLASS_NAMES["STL10"]) + "\n")
    return Fake(base.parent, out[0], out[1], list(CLASS_NAMES["STL10"]))


# --- PCAM (.h5) -------------------------------------------------------------------------------------------------
def pcam(loc: Path) -> Fake:
    import h5py

    base = loc / "PCAM" / "pcam"
    base.mkdir(parents=True)
    out = []
    for split, n in (("train", 12), ("test", 4)):
        labels = _labels(n, 2, 100 + n)
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f.create_dataset("x", data=_rng(101 + n).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8))
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f.create_dataset("y", data=np.asarray(labels, dtype=np.uint8).reshape(n, 1, 1, 1))
        out.append(labels)
    return Fake(base.parent, out[0], out[1])


# --- annotation files (OxfordIIITPet, Food101) -----------------------------------------------------------------
_PET_BREEDS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
               "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
               "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
               "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug",
               "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu",
               "Siamese", "Sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier"]


def oxford_pets(loc: Path) -> Fake:
    base = loc / "OxfordIIITPet" / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    out = []
    for split, n, offset in (("trainval", 40, 1), ("test", 5, 100)):
        labels = _labels(n, 37, 110 + n) if split == "test" else [i % 37 for i in range(n)]
        lines = []
        for i, y in enumerate(labels):
            image_id = f"{_PET_BREEDS[y]}_{offset + i}"
            _image(base / "images" / f"{image_id}.jpg", 111 + i + offset)
            lines.append(f"{image_id} {y + 1} {1 if _PET_BREEDS[y][0].isupper() else 2} 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        out.append(labels)
    return Fake(base.parent, out[0], out[1])


def food101(loc: Path) -> Fake:
    base = loc / "food101" / "food-101"
    classes = list(CLASS_NAMES["Food101"])
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    out = []
    for split, n in (("train", 12), ("test", 4)):
        meta: dict[str, list[str]] = {c: [] for c in classes}
        labels = []
        for i in range(n):
            c = classes[(7 * i + len(split)) % len(classes)]
            image_id = f"{c}/{split}{i}"
            _image(base / "images" / f"{image_id}.jpg", 120 + i + n)
            meta[c].append(image_id)
        for c in classes:  # torchvision lists the items class by class
            labels += [classes.index(c)] * len(meta[c])
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
        out.append(labels)
    return Fake(base.parent, out[0], out[1], classes)


# --- folder splits ---------------------------------------------------------------------------------------------
def _class_folders(root: Path, classes: list[str], per_class: dict[str, int], seed: int, ext: str = "jpg",
                   name: Callable[[str, int], str] | None = None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for split, n in per_class.items():
        labels = []
        for ci, c in enumerate(sorted(classes)):  # ImageFolder lists classes sorted, files sorted
            for i in range(n):
                fname = name(c, i) if name else f"{i:03d}.{ext}"
                _image(root / split / c / fname, seed + ci * 7 + i, size=4)
                labels.append(ci)
        out[split] = labels
    return out


def dtd(loc: Path) -> Fake:
    """``dtd/{train,val}/<class>/``: the papers' prepared DTD, whose ``val`` is the test set."""
    classes = [c.replace(" ", "_") for c in CLASS_NAMES["DTD"]]
    got = _class_folders(loc / "dtd", classes, {"train": 1, "val": 1}, 130)
    return Fake(loc / "dtd", got["train"], got["val"], sorted(classes))


def sun397(loc: Path) -> Fake:
    got = _class_folders(loc / "sun397", list(SUN397_FOLDERS), {"train": 1, "val": 1}, 140)
    return Fake(loc / "sun397", got["train"], got["val"], sorted(SUN397_FOLDERS))


def eurosat(loc: Path) -> Fake:
    got = _class_folders(loc / "EuroSAT_splits", list(EUROSAT_FOLDERS), {"train": 2, "val": 1, "test": 1}, 150)
    return Fake(loc / "EuroSAT_splits", got["train"] + [], got["test"], sorted(EUROSAT_FOLDERS))


def resisc45(loc: Path) -> Fake:
    """``resisc45/NWPU-RESISC45/<class>/<class>_NNN.jpg`` and ``resisc45-{train,val,test}.txt``."""
    base = loc / "resisc45"
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for ci, c in enumerate(sorted(_RESISC45_FOLDERS)):
        for i, split in enumerate(("train", "train", "val", "test")):
            fname = f"{c}_{i + 1:03d}.jpg"
            _image(base / "NWPU-RESISC45" / c / fname, 160 + ci + i, size=4)
            lists[split].append(fname)
            labels[split].append(ci)
    for split, names in lists.items():
        (base / f"resisc45-{split}.txt").write_text("\n".join(names) + "\n")
    return Fake(base, labels["train"], labels["test"], sorted(_RESISC45_FOLDERS))


def rendered_sst2(loc: Path) -> Fake:
    """``RenderedSST2/rendered-sst2/{train,valid,test}/{negative,positive}/*.png``."""
    base = loc / "RenderedSST2" / "rendered-sst2"
    got = _class_folders(base, ["negative", "positive"], {"train": 5, "valid": 1, "test": 2}, 170, ext="png")
    return Fake(base.parent, got["train"], got["test"], ["negative", "positive"])


FER_FOLDERS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]  # Kaggle's image export, sorted


def fer2013_folders(loc: Path) -> Fake:
    """``fer2013/{train,test}/<emotion>/``: the image-folder FER2013 (folders in alphabetical order). The labels
    returned are FER2013's own label order (angry, disgusted, fearful, happy, sad, surprised, neutral)."""
    got = _class_folders(loc / "fer2013", FER_FOLDERS, {"train": 2, "test": 1}, 180)
    fer_order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    relabel = {i: fer_order.index(name) for i, name in enumerate(FER_FOLDERS)}
    return Fake(loc / "fer2013", [relabel[y] for y in got["train"]], [relabel[y] for y in got["test"]])


def _fer_rows(n: int, seed: int) -> tuple[list[int], list[str]]:
    labels = _labels(n, 7, seed)
    pixels = [" ".join(str(int(v)) for v in _rng(seed + i).integers(0, 256, 48 * 48)) for i in range(n)]
    return labels, pixels


def fer2013_csv(loc: Path, form: str = "fer2013") -> Fake:
    """torchvision's FER2013 layout ``FER2013/fer2013/``: ``fer2013.csv`` (emotion,pixels,Usage), or Kaggle's
    ``train.csv`` (emotion,pixels) + ``test.csv`` (pixels only: unlabeled)."""
    base = loc / "FER2013" / "fer2013"
    base.mkdir(parents=True)
    train, train_px = _fer_rows(12, 190)
    test, test_px = _fer_rows(4, 191)
    if form == "fer2013":
        with open(base / "fer2013.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["emotion", "pixels", "Usage"])
            usage = ["Training"] * len(train) + ["PublicTest", "PrivateTest"] * (len(test) // 2)
            for y, px, u in zip(train + test, train_px + test_px, usage):
                w.writerow([y, px, u])
    else:
        with open(base / "train.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["emotion", "pixels"])
            w.writerows(zip(train, train_px))
        with open(base / "test.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["pixels"])
            w.writerows([[px] for px in test_px])
    return Fake(base.parent, train, test)


#: every benchmark's writer (FER2013: the image-folder form; see fer2013_csv for the CSV forms)
WRITERS: dict[str, Callable[[Path], Fake]] = {
    "Cars": cars, "DTD": dtd, "EuroSAT": eurosat, "GTSRB": gtsrb, "MNIST": mnist, "RESISC45": resisc45,
    "SUN397": sun397, "SVHN": svhn, "CIFAR100": cifar100, "STL10": stl10, "Flowers102": flowers102,
    "OxfordIIITPet": oxford_pets, "PCAM": pcam, "FER2013": fer2013_folders, "EMNIST": emnist, "CIFAR10": cifar10,
    "Food101": food101, "FashionMNIST": fashion_mnist, "RenderedSST2": rendered_sst2, "KMNIST": kmnist,
}


def write_location(loc: Path, names: list[str] | None = None) -> dict[str, Fake]:
    """The papers' data location with the fakes of ``names`` (default: all 20)."""
    loc.mkdir(parents=True, exist_ok=True)
    return {n: WRITERS[n](loc) for n in (names or list(WRITERS))}
