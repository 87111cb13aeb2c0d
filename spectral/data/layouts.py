"""Where each of the papers' 20 data sets lies under a data location, and how it is read.

The task_vectors (Ilharco et al. 2023) and tall_masks (Wang et al. 2024) evaluation code, which TSV and Iso-C/CTS
reuse, reads every data set from one folder, the *data location*: torchvision's data sets with ``root`` set to the
location itself (MNIST, Cars, GTSRB, CIFAR10, CIFAR100) or to a sub-folder of it (``svhn``, ``stl10``,
``flowers102``, ...), and the folder splits that their instructions prepare (``dtd``, ``sun397``,
``EuroSAT_splits``, ``resisc45``). :data:`DATASETS` lists, for each of the 20, the layouts spectral reads, the
papers' first; each layout names its root under the data location and the files expected there.

A task's data folder (``data:`` in a pool YAML, or the pool's ``data_root:``) may be the data location, the data
set's torchvision root or the data set's own folder. It is opened **only as the data set the task names**: only
that data set's layouts are tried, whatever other folders lie there (a data location holds many), and when none
fits the error names the data set, the folder, and the files that were expected. A folder whose class folders are
another benchmark's, or whose class count is not the data set's, is refused by name.

Nothing is downloaded. torchvision's MD5 checks of whole files are replaced by existence checks (they re-hash
hundreds of megabytes on every open); CIFAR's pickled batches are read with a restricted unpickler that rebuilds
only NumPy arrays and plain containers, and FER2013's CSV files with the ``csv`` module.
"""
from __future__ import annotations

import csv
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from spectral.data.folders import (
    DatasetError,
    LabelledDataset,
    Split,
    _label_map,
    _normalise,
    _open_image_folder_layout,
    _with_split,
)
from spectral.data.templates import (
    _RESISC45_FOLDERS,
    ALL_DATASETS,
    CLASS_NAMES,
    EUROSAT_FOLDERS,
    FER2013_SYNONYMS,
    SUN397_FOLDERS,
    canonical_dataset_name,
)

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DataSetInfo",
    "Layout",
    "data_status",
    "find_data",
    "identify",
    "locate",
    "open_benchmark",
]

Transform = Callable[[Any], Any] | None

#: FER2013's folder names in Kaggle's image export, in FER2013's label order (angry … neutral)
FER2013_FOLDERS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@dataclass(frozen=True)
class Layout:
    """One on-disk form of a data set.

    ``roots``: where its root lies under a data location (``""``: the location itself); the first is the papers'.
    ``expected``: paths under the root that must all exist (``"a|b"``: either). ``open(root, split, transform,
    class_names)`` gives the split as a :class:`LabelledDataset`. ``intrinsic_classes``: the data set's own class
    list (class folders, a meta file) is checked against the benchmark's class count."""

    dataset: str
    name: str
    roots: tuple[str, ...]
    expected: tuple[str, ...]
    open: Callable[[Path, Split, Transform, Sequence[str] | None], LabelledDataset]
    intrinsic_classes: bool = True
    folder_splits: bool = False

    def missing(self, root: Path) -> list[str]:
        """The expected paths (alternatives joined by " or ") that do not exist under ``root``."""
        out = []
        for entry in self.expected:
            options = entry.split("|")
            if not any((root / o).exists() for o in options):
                out.append(" or ".join(options))
        return out

    def matches(self, root: Path) -> bool:
        return root.is_dir() and not self.missing(root)


@dataclass(frozen=True)
class DataSetInfo:
    """A benchmark data set: its layouts (the papers' first) and where to get it."""

    name: str
    layouts: tuple[Layout, ...]
    source: str
    #: class-folder names this data set's folder exports use (besides its class names), normalised
    folder_names: frozenset[str] = field(default_factory=frozenset)


# --- readers ---------------------------------------------------------------------------------------------------

def _tv_layout(dataset: str, name: str, roots: tuple[str, ...], expected: tuple[str, ...],
               make: Callable[[str, str, Transform], Any], *, intrinsic_classes: bool = True) -> Layout:
    """A layout read by a torchvision-style class ``make(root, 'train'|'test', transform)``; ``val`` is carved
    out of ``train`` as the reference code does."""

    def open_(root: Path, split: Split, transform: Transform, class_names: Sequence[str] | None) -> LabelledDataset:
        def build(which: str) -> Any:
            try:
                return make(str(root), which, transform)
            except ImportError as exc:
                raise DatasetError(f"{dataset}: reading {root} needs a package that is not installed ({exc}); "
                                   "`bash scripts/setup.sh` installs requirements.txt") from None
            except (RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError, EOFError,
                    pickle.UnpicklingError) as exc:
                raise DatasetError(f"{dataset}: {root} is not readable as {name} ({type(exc).__name__}: {exc})") from None

        first = build("test" if split == "test" else "train")
        ds = first if split == "test" else _with_split(first, split, lambda: build("test"), None)
        classes = list(getattr(first, "classes", None) or []) if intrinsic_classes else []
        return LabelledDataset(ds, classes=classes or list(CLASS_NAMES[dataset]),
                               description=f"{dataset} ({name}) {root} [{split}]")

    return Layout(dataset, name, roots, expected, open_, intrinsic_classes=intrinsic_classes)


def _folder_layout(dataset: str, name: str, roots: tuple[str, ...], expected: tuple[str, ...],
                   aliases: dict[str, int] | None = None) -> Layout:
    """ImageFolder split folders (``train/`` and ``test/`` or ``val/``), see :mod:`spectral.data.folders`."""

    def open_(root: Path, split: Split, transform: Transform, class_names: Sequence[str] | None) -> LabelledDataset:
        ds = _open_image_folder_layout(root, split, transform, class_names or CLASS_NAMES[dataset])
        if ds is None:
            raise DatasetError(f"{dataset}: {root} has no class folders under {', '.join(expected)}")
        if aliases is not None and ds.classes is not None:
            mapped = [aliases.get(_normalise(c)) for c in ds.classes]
            if all(m is not None for m in mapped) and sorted(mapped) == list(range(len(mapped))):  # type: ignore[type-var]
                ds.label_map = None if mapped == list(range(len(mapped))) else [int(m) for m in mapped]  # type: ignore[arg-type]
        return ds

    return Layout(dataset, name, roots, expected, open_, folder_splits=True)


def _resisc45_layout() -> Layout:
    def open_(root: Path, split: Split, transform: Transform, class_names: Sequence[str] | None) -> LabelledDataset:
        from spectral.data.folders import _image_folder

        base = root / "resisc45"
        images = base / "NWPU-RESISC45"

        def subset(which: str) -> Any:
            names = {line.strip() for line in (base / f"resisc45-{which}.txt").read_text().splitlines()
                     if line.strip()}
            return _image_folder(images, transform, is_valid_file=lambda p: os.path.basename(p) in names)

        train = subset("train")
        ds = _with_split(train, split, lambda: subset("test"), None)
        classes = list(train.classes)
        return LabelledDataset(ds, classes=classes, label_map=_label_map(classes, class_names),
                               description=f"RESISC45 {base} [{split}]")

    return Layout("RESISC45", "the papers' RESISC45 (image folders + split lists)", ("",),
                  ("resisc45/NWPU-RESISC45", "resisc45/resisc45-train.txt", "resisc45/resisc45-test.txt"), open_)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles: rebuild NumPy arrays and plain containers, nothing else (unpickling an
    arbitrary global runs code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("builtins", "bytearray"),
        ("__builtin__", "bytearray"), ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CIFAR batch (only NumPy arrays)")


def _read_cifar_pickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a CIFAR batch is a dict, found {type(data).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


class CifarBatches(Dataset):
    """CIFAR10/CIFAR100 from the pickled batches of ``cifar-10-batches-py`` / ``cifar-100-python`` (the same
    items, order and classes as ``torchvision.datasets.CIFAR10/100``)."""

    def __init__(self, root: str, split: str, transform: Transform, *, hundred: bool) -> None:
        folder = Path(root) / ("cifar-100-python" if hundred else "cifar-10-batches-py")
        if hundred:
            files, meta, label_key, names_key = [split], "meta", "fine_labels", "fine_label_names"
        else:
            files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
            meta, label_key, names_key = "batches.meta", "labels", "label_names"
        data, labels = [], []
        for name in files:
            entry = _read_cifar_pickle(folder / name)
            data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(int(y) for y in entry[label_key])
        self.data = np.concatenate(data).transpose((0, 2, 3, 1))  # HWC, as torchvision
        self.targets = labels
        self.classes = [str(c) for c in _read_cifar_pickle(folder / meta)[names_key]]
        self.transform = transform
        if len(self.targets) != len(self.data):
            raise ValueError(f"{folder}: {len(self.data)} images but {len(self.targets)} labels")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.data[index])
        return (self.transform(image) if self.transform is not None else image), self.targets[index]


class Fer2013Csv(Dataset):
    """FER2013 from torchvision's layout ``fer2013/``: ``fer2013.csv`` or ``icml_face_data.csv`` (every row
    labelled, split by ``Usage``), else Kaggle's ``train.csv`` + ``test.csv``. Kaggle's ``test.csv`` has no
    labels, so its test split is refused by name. Labels are FER2013's order (angry … neutral)."""

    def __init__(self, root: str, split: str, transform: Transform) -> None:
        base = Path(root) / "fer2013"
        full = next((base / n for n in ("fer2013.csv", "icml_face_data.csv") if (base / n).is_file()), None)
        path = full if full is not None else base / f"{split}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        images, labels = [], []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = {k.strip(): k for k in (reader.fieldnames or [])}
            if "pixels" not in fields:
                raise ValueError(f"{path}: no 'pixels' column (columns: {sorted(fields)})")
            if "emotion" not in fields:
                raise DatasetError(
                    f"FER2013: {path} has no labels (Kaggle's {path.name} lists only pixels), so its {split} split "
                    "cannot be evaluated: use fer2013.csv or icml_face_data.csv, which label every row, or the "
                    "image folders fer2013/{train,test}/<emotion>/")
            usage = fields.get("Usage")
            wanted = ("Training",) if split == "train" else ("PublicTest", "PrivateTest")
            for row in reader:
                if full is not None and (usage is None or row[usage].strip() not in wanted):
                    continue
                images.append(np.asarray(row[fields["pixels"]].split(), dtype=np.uint8).reshape(48, 48))
                labels.append(int(row[fields["emotion"]]))
        self.images, self.targets, self.transform = images, labels, transform
        self.classes = list(CLASS_NAMES["FER2013"])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform is not None else image), self.targets[index]


def _fer_csv_layout() -> Layout:
    def open_(root: Path, split: Split, transform: Transform, class_names: Sequence[str] | None) -> LabelledDataset:
        def build(which: str) -> Fer2013Csv:
            try:
                return Fer2013Csv(str(root), which, transform)
            except DatasetError:
                raise
            except (OSError, ValueError, KeyError) as exc:
                raise DatasetError(f"FER2013: {root / 'fer2013'} is not readable ({type(exc).__name__}: {exc})") from None

        ds = build("test") if split == "test" else _with_split(build("train"), split, lambda: build("test"), None)
        return LabelledDataset(ds, classes=list(CLASS_NAMES["FER2013"]), description=f"FER2013 (CSV) {root} [{split}]")

    return Layout("FER2013", "torchvision's FER2013 (Kaggle CSV)", ("FER2013", ""),
                  ("fer2013/fer2013.csv|fer2013/icml_face_data.csv|fer2013/train.csv",), open_,
                  intrinsic_classes=False)


def _torchvision() -> Any:
    import torchvision.datasets as tvd

    return tvd


_EXISTS_ONLY: dict[str, type] = {}


def _exists_only(cls_name: str, paths: Callable[[Any], list[Path]]) -> type:
    """A subclass of torchvision's ``cls_name`` whose integrity check is that its files exist (no MD5 pass)."""
    if cls_name not in _EXISTS_ONLY:
        base = getattr(_torchvision(), cls_name)
        _EXISTS_ONLY[cls_name] = type(f"_{cls_name}", (base,),
                                      {"_check_integrity": lambda self: all(p.exists() for p in paths(self))})
    return _EXISTS_ONLY[cls_name]


def _train_flag(cls_name: str, **kw: Any) -> Callable[[str, str, Transform], Any]:
    return lambda root, split, tf: getattr(_torchvision(), cls_name)(root=root, train=(split == "train"),
                                                                       transform=tf, download=False, **kw)


def _split_arg(cls: Callable[..., Any] | str, train_name: str = "train") -> Callable[[str, str, Transform], Any]:
    def make(root: str, split: str, tf: Transform) -> Any:
        c = getattr(_torchvision(), cls) if isinstance(cls, str) else cls
        return c(root=root, split=(train_name if split == "train" else "test"), transform=tf, download=False)
    return make


def _svhn(root: str, split: str, tf: Transform) -> Any:
    cls = _exists_only("SVHN", lambda s: [Path(s.root) / s.filename])
    return cls(root=root, split=split, transform=tf, download=False)


def _stl10(root: str, split: str, tf: Transform) -> Any:
    cls = _exists_only("STL10", lambda s: [Path(s.root) / s.base_folder / f"{s.split}_{x}.bin" for x in ("X", "y")])
    return cls(root=root, split=split, transform=tf, download=False)


def _flowers(root: str, split: str, tf: Transform) -> Any:
    cls = _exists_only("Flowers102", lambda s: [s._images_folder, s._base_folder / "imagelabels.mat",
                                                s._base_folder / "setid.mat"])
    return cls(root=root, split=split, transform=tf, download=False)


def _mnist_files(folder: str, prefixes: tuple[str, str] = ("train", "t10k")) -> tuple[str, ...]:
    return tuple(f"{folder}/raw/{p}-{kind}" for p in prefixes for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


def _generic(dataset: str, roots: tuple[str, ...]) -> Layout:
    return _folder_layout(dataset, "image folders of train/ and test/ (or val/)", roots,
                          ("train|training", "test|testing|val|valid|validation"))


def _names(*extra: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(extra))


def _build() -> dict[str, DataSetInfo]:
    tv_site = "torchvision's files (the papers' code downloads them with torchvision; spectral never does)"
    fer_aliases = {}
    for i, (folder, synonyms) in enumerate(zip(FER2013_FOLDERS, FER2013_SYNONYMS)):
        for n in (folder, *synonyms):
            fer_aliases[_normalise(n)] = i
    infos = [
        DataSetInfo("Cars", (
            _tv_layout("Cars", "torchvision's StanfordCars", ("",), (
                "stanford_cars/devkit/cars_meta.mat", "stanford_cars/devkit/cars_train_annos.mat",
                "stanford_cars/cars_train", "stanford_cars/cars_test", "stanford_cars/cars_test_annos_withlabels.mat"),
                _split_arg("StanfordCars")),
            _generic("Cars", _names("stanford_cars", "cars", "Cars"))),
            "Stanford Cars with the devkit and cars_test_annos_withlabels.mat (task_vectors issue #1)"),
        DataSetInfo("DTD", (
            _folder_layout("DTD", "the papers' DTD splits", ("dtd",), ("train", "val")),
            _tv_layout("DTD", "torchvision's DTD", ("",), ("dtd/dtd/images", "dtd/dtd/labels/train1.txt",
                                                          "dtd/dtd/labels/test1.txt"), _split_arg("DTD"),
                       intrinsic_classes=True),
            _generic("DTD", _names("dtd", "DTD"))),
            "DTD split into train/val class folders by the papers' instructions (task_vectors issue #1)"),
        DataSetInfo("EuroSAT", (
            _folder_layout("EuroSAT", "the papers' EuroSAT splits", ("EuroSAT_splits",), ("train", "test|val")),
            _generic("EuroSAT", _names("eurosat", "EuroSAT"))),
            "EuroSAT (RGB) split into train/val/test class folders (task_vectors issue #1)",
            frozenset(_normalise(f) for f in EUROSAT_FOLDERS)),
        DataSetInfo("GTSRB", (
            _tv_layout("GTSRB", "torchvision's GTSRB", ("",), (
                "gtsrb/GTSRB/Training", "gtsrb/GTSRB/Final_Test/Images", "gtsrb/GT-final_test.csv"),
                _split_arg("GTSRB"), intrinsic_classes=False),
            _generic("GTSRB", _names("gtsrb", "GTSRB"))),
            tv_site, frozenset(f"{i:05d}" for i in range(43))),
        DataSetInfo("MNIST", (
            _tv_layout("MNIST", "torchvision's MNIST", ("",), _mnist_files("MNIST"), _train_flag("MNIST")),
            _generic("MNIST", _names("mnist", "MNIST"))), tv_site),
        DataSetInfo("RESISC45", (_resisc45_layout(), _generic("RESISC45", _names("resisc45", "RESISC45"))),
                    "NWPU-RESISC45 images with the resisc45-{train,val,test}.txt split lists (task_vectors issue #1)",
                    frozenset(_normalise(f) for f in _RESISC45_FOLDERS)),
        DataSetInfo("SUN397", (
            _folder_layout("SUN397", "the papers' SUN397 splits", ("sun397",), ("train", "val")),
            _generic("SUN397", _names("sun397", "SUN397"))),
            "SUN397 split into train/val class folders by the papers' instructions (task_vectors issue #1)",
            frozenset(_normalise(f) for f in SUN397_FOLDERS)),
        DataSetInfo("SVHN", (
            _tv_layout("SVHN", "torchvision's SVHN", ("svhn", ""), ("train_32x32.mat", "test_32x32.mat"), _svhn,
                       intrinsic_classes=False),
            _generic("SVHN", _names("svhn", "SVHN"))), tv_site),
        DataSetInfo("CIFAR100", (
            _tv_layout("CIFAR100", "CIFAR-100 python batches", ("", "cifar100", "CIFAR100"),
                       ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
                       lambda r, s, tf: CifarBatches(r, s, tf, hundred=True)),
            _generic("CIFAR100", _names("cifar100", "CIFAR100"))), tv_site),
        DataSetInfo("STL10", (
            _tv_layout("STL10", "torchvision's STL10 binaries", ("stl10", ""), (
                "stl10_binary/train_X.bin", "stl10_binary/train_y.bin", "stl10_binary/test_X.bin",
                "stl10_binary/test_y.bin"), _stl10),
            _generic("STL10", _names("stl10", "STL10"))), tv_site),
        DataSetInfo("Flowers102", (
            _tv_layout("Flowers102", "torchvision's Flowers102", ("flowers102", ""), (
                "flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"), _flowers),
            _generic("Flowers102", _names("flowers102", "Flowers102"))), tv_site),
        DataSetInfo("OxfordIIITPet", (
            _tv_layout("OxfordIIITPet", "torchvision's OxfordIIITPet", ("OxfordIIITPet", ""), (
                "oxford-iiit-pet/images", "oxford-iiit-pet/annotations/trainval.txt",
                "oxford-iiit-pet/annotations/test.txt"), _split_arg("OxfordIIITPet", "trainval"),
                intrinsic_classes=False),
            _generic("OxfordIIITPet", _names("OxfordIIITPet", "oxford-iiit-pet", "pets"))), tv_site),
        DataSetInfo("PCAM", (
            _tv_layout("PCAM", "torchvision's PCAM (HDF5, needs h5py)", ("PCAM", "pcam", ""), tuple(
                f"pcam/camelyonpatch_level_2_split_{s}_{xy}.h5" for s in ("train", "test") for xy in ("x", "y")),
                _split_arg("PCAM"), intrinsic_classes=False),
            _generic("PCAM", _names("pcam", "PCAM"))), tv_site),
        DataSetInfo("FER2013", (
            _folder_layout("FER2013", "FER2013 image folders (Kaggle's export)", ("fer2013", "FER2013"),
                           ("train", "test|val"), aliases=fer_aliases),
            _fer_csv_layout()),
            "Kaggle's FER2013 (the papers load it from the Hugging Face hub): its image folders, or fer2013.csv",
            frozenset(fer_aliases)),
        DataSetInfo("EMNIST", (
            _tv_layout("EMNIST", "torchvision's EMNIST (digits)", ("EMNIST", ""), tuple(
                f"EMNIST/raw/emnist-digits-{s}-{k}" for s in ("train", "test")
                for k in ("images-idx3-ubyte", "labels-idx1-ubyte")), _train_flag("EMNIST", split="digits")),
            _generic("EMNIST", _names("emnist",))), tv_site),
        DataSetInfo("CIFAR10", (
            _tv_layout("CIFAR10", "CIFAR-10 python batches", ("", "cifar10", "CIFAR10"), tuple(
                f"cifar-10-batches-py/{n}" for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch",
                                                                                              "batches.meta"]),
                lambda r, s, tf: CifarBatches(r, s, tf, hundred=False)),
            _generic("CIFAR10", _names("cifar10", "CIFAR10"))), tv_site),
        DataSetInfo("Food101", (
            _tv_layout("Food101", "torchvision's Food101", ("food101", ""), (
                "food-101/images", "food-101/meta/train.json", "food-101/meta/test.json"), _split_arg("Food101")),
            _generic("Food101", _names("food101", "Food101"))), tv_site),
        DataSetInfo("FashionMNIST", (
            _tv_layout("FashionMNIST", "torchvision's FashionMNIST", ("FashionMNIST", ""),
                       _mnist_files("FashionMNIST"), _train_flag("FashionMNIST")),
            _generic("FashionMNIST", _names("fashionmnist", "fashion_mnist"))), tv_site),
        DataSetInfo("RenderedSST2", (
            _tv_layout("RenderedSST2", "torchvision's RenderedSST2", ("RenderedSST2", ""), tuple(
                f"rendered-sst2/{s}/{c}" for s in ("train", "test") for c in ("negative", "positive")),
                _split_arg("RenderedSST2")),
            _generic("RenderedSST2", _names("rendered_sst2", "sst2"))), tv_site),
        DataSetInfo("KMNIST", (
            _tv_layout("KMNIST", "torchvision's KMNIST", ("KMNIST", ""), _mnist_files("KMNIST"),
                       _train_flag("KMNIST")),
            _generic("KMNIST", _names("kmnist",))), tv_site),
    ]
    table = {i.name: i for i in infos}
    return {name: table[name] for name in ALL_DATASETS}


DATASETS: dict[str, DataSetInfo] = _build()


# --- resolution ------------------------------------------------------------------------------------------------

def _candidates(layout: Layout, path: Path, *, under_location: bool) -> list[Path]:
    """Roots to try for ``path``: the layout's roots under it (``path`` as the data location); unless
    ``under_location``, also ``path`` itself (the data set's root) and, when ``path`` is the data set's own
    folder inside its root (``MNIST``, ``cifar-10-batches-py``: every expected path starts with its name), the
    parent."""
    out = [path / r if r else path for r in layout.roots]
    if not under_location:
        out.append(path)
        if all(e.split("|")[0].split("/")[0] == path.name for e in layout.expected):
            out.append(path.parent)
    return list(dict.fromkeys(out))


def _benchmark(dataset: str) -> DataSetInfo:
    canon = canonical_dataset_name(dataset)
    if canon is None or canon not in DATASETS:
        raise DatasetError(f"{dataset!r} is not one of the 20 benchmark data sets ({', '.join(ALL_DATASETS)})")
    return DATASETS[canon]


def locate(dataset: str, path: str | os.PathLike[str], *, under_location: bool = False) -> tuple[Path, Layout] | None:
    """``(root, layout)`` of ``dataset``'s data at ``path`` (a data location, the data set's root or its own
    folder), trying only that data set's layouts, the papers' first; None when none fits."""
    info = _benchmark(dataset)
    p = Path(path)
    for layout in info.layouts:
        for root in _candidates(layout, p, under_location=under_location):
            if layout.matches(root):
                return root, layout
    return None


def find_data(dataset: str, data_root: str | os.PathLike[str]) -> Path | None:
    """The root of ``dataset`` under the data location ``data_root`` (the papers' folder names), or None."""
    found = locate(dataset, data_root, under_location=True)
    return found[0] if found else None


def identify(path: str | os.PathLike[str]) -> list[str]:
    """The benchmarks whose own files lie at ``path`` as a data location or a root. Image-folder layouts count
    only under their named folders (``dtd/``, ``EuroSAT_splits/``): any ``train/`` + ``test/`` would fit them."""
    p = Path(path)
    out = []
    for name, info in DATASETS.items():
        for layout in info.layouts:
            if layout.folder_splits:
                roots = [p / r for r in layout.roots if r and not layout.name.startswith("image folders")]
            else:
                roots = [p / r if r else p for r in layout.roots] + [p]
            if any(layout.matches(r) for r in roots):
                out.append(name)
                break
    return out


def _class_folder_owners(classes: Sequence[str]) -> list[str]:
    """Benchmarks whose class names or known folder names include every one of ``classes``."""
    got = {_normalise(c) for c in classes}
    owners = []
    for name, info in DATASETS.items():
        known = {_normalise(c) for c in CLASS_NAMES[name]} | set(info.folder_names)
        if got and got <= known:
            owners.append(name)
    return owners


def _not_found(info: DataSetInfo, path: Path) -> DatasetError:
    lines = []
    for layout in info.layouts:
        root = path / layout.roots[0] if layout.roots[0] else path
        files = ", ".join(e.replace("|", " or ") for e in layout.expected)
        lines.append(f"{layout.name} in {root}: {files}")
    others = [n for n in identify(path) if n != info.name]
    hint = (f" {path} holds {', '.join(others)} data, which is never used for {info.name}." if others else "")
    return DatasetError(f"{info.name}: no {info.name} data at {path}. Expected one of: " + "; ".join(lines) + "."
                        + hint + " See the table of the 20 data sets in docs/data.md.")


def open_benchmark(dataset: str, path: str | os.PathLike[str], split: Split, *, transform: Transform,
                   class_names: Sequence[str] | None = None, under_location: bool = False) -> LabelledDataset:
    """One split of benchmark ``dataset`` from ``path`` (see :func:`locate`), its classes checked against the
    benchmark's: a folder of another data set is refused by name."""
    info = _benchmark(dataset)
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{info.name}: data folder {p} does not exist")
    found = locate(info.name, p, under_location=under_location)
    if found is None:
        raise _not_found(info, p)
    root, layout = found
    ds = layout.open(root, split, transform, class_names)
    ds.root, ds.layout = str(root), layout.name
    expected = len(CLASS_NAMES[info.name])
    if layout.folder_splits and ds.classes is not None:
        owners = _class_folder_owners(ds.classes)
        if owners and info.name not in owners:
            raise DatasetError(f"{info.name}: {root} holds the class folders of {', '.join(owners)} "
                               f"({', '.join(ds.classes[:3])}, ...), not {info.name}'s")
    if layout.intrinsic_classes and ds.classes is not None and len(ds.classes) != expected:
        owners = [n for n in identify(root) if n != info.name] or (
            _class_folder_owners(ds.classes) if layout.folder_splits else [])
        raise DatasetError(
            f"{info.name}: {root} ({layout.name}) has {len(ds.classes)} classes, {info.name} has {expected}"
            + (f"; it looks like {', '.join(owners)}" if owners else "") + ": not this task's data")
    return ds


def data_status(dataset: str | None, path: str | os.PathLike[str] | None, split: Split = "test", *,
                under_location: bool = False) -> dict[str, Any]:
    """``{"found", "images", "root", "layout", "detail"}`` of one task's data, without decoding images (the
    split's length only); errors are reported in ``detail``, not raised."""
    status: dict[str, Any] = {"found": False, "images": None, "root": None, "layout": None, "detail": ""}
    if path is None:
        status["detail"] = "no data folder ('data:' or 'data_root:')"
        return status
    try:
        from spectral.data.folders import open_folder_dataset

        ds = open_folder_dataset(path, split, transform=None, dataset=dataset, under_location=under_location)
        status.update(found=True, images=len(ds), detail=ds.description)
    except DatasetError as exc:
        status["detail"] = str(exc)
    return status
