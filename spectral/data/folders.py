"""Data sets from local folders, preprocessed as the architecture's CLIP expects.

The papers' 20 benchmarks are read in their own on-disk layouts (torchvision's files, the papers' prepared
folder splits) by :mod:`spectral.data.layouts`, which opens a folder only as the data set a task names. Any other
task's data is **image folders with split folders**: ``<root>/train/<class>/<image>``, ``<root>/test/<class>/...``
and optionally ``<root>/val/<class>/...`` (aliases: ``training``/``testing``/``valid``/``validation``); where no
``test`` folder exists, ``val`` is the test set (as the papers' ``dtd/{train,val}`` and ``sun397/{train,val}``).

Validation split: where no validation folder exists, ``val`` is carved out of ``train`` exactly as the reference
code does it (``torch.utils.data.random_split`` of the training set into train/val with
``val = min(int(0.1 · N), 5000)`` and ``torch.Generator().manual_seed(0)``), and ``train`` is the remainder.
For torchvision layouts the reference always does this, even where torchvision ships a validation split.

Every item is ``(image: Tensor[3, H, W], label: int)``.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, random_split

from spectral.data.templates import canonical_dataset_name
from spectral.errors import SpectralError

log = logging.getLogger(__name__)

__all__ = [
    "DatasetError",
    "LabelledDataset",
    "clip_preprocess",
    "open_folder_dataset",
    "split_sizes",
    "train_val_split",
]

Split = Literal["train", "val", "test"]

VAL_FRACTION = 0.1
MAX_VAL_SAMPLES = 5000
SPLIT_SEED = 0

_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class DatasetError(SpectralError, ValueError):
    """A task's data folder is missing, empty, or in no recognised layout."""


def clip_preprocess(architecture_or_size: str | int) -> Callable[[Any], Tensor]:
    """open_clip's evaluation transform (resize shortest side, centre crop, RGB, CLIP mean/std) for an
    architecture name (its configured image size) or an explicit image size. Built locally, no download."""
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean, std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    interpolation, resize_mode = None, None
    if isinstance(architecture_or_size, str):
        cfg = open_clip.get_model_config(architecture_or_size)
        if cfg is None:
            raise DatasetError(f"open_clip has no model config named {architecture_or_size!r}")
        size = cfg["vision_cfg"].get("image_size", 224)
        pp = cfg.get("preprocess_cfg") or {}
        mean, std = tuple(pp.get("mean", mean)), tuple(pp.get("std", std))
        interpolation, resize_mode = pp.get("interpolation"), pp.get("resize_mode")
    else:
        size = int(architecture_or_size)
    return open_clip.image_transform(size, is_train=False, mean=mean, std=std, interpolation=interpolation,
                                     resize_mode=resize_mode)


def split_sizes(total: int, val_fraction: float = VAL_FRACTION, max_val: int | None = MAX_VAL_SAMPLES) -> tuple[int, int]:
    """(train, val) sizes of the reference split: val = int(total · fraction), capped at ``max_val``."""
    val = int(total * val_fraction)
    if max_val is not None:
        val = min(val, max_val)
    if val <= 0 or total - val <= 0:
        raise DatasetError(f"cannot split {total} training samples into train/val with fraction {val_fraction}")
    return total - val, val


def train_val_split(dataset: Dataset, *, val_fraction: float = VAL_FRACTION, max_val: int | None = MAX_VAL_SAMPLES,
                    seed: int = SPLIT_SEED) -> tuple[Subset, Subset]:
    """The reference code's train/validation split of a training set (same indices for the same order)."""
    n_train, n_val = split_sizes(len(dataset), val_fraction, max_val)  # type: ignore[arg-type]
    train, val = random_split(dataset, [n_train, n_val], generator=torch.Generator().manual_seed(seed))
    return train, val


class LabelledDataset(Dataset):
    """Wraps a data set so items are ``(Tensor[3, H, W], int)`` and carries its class names and label map."""

    def __init__(self, base: Dataset, *, classes: Sequence[str] | None = None,
                 label_map: Sequence[int] | None = None, description: str = "") -> None:
        self.base = base
        self.classes = list(classes) if classes is not None else None
        self.label_map = list(label_map) if label_map is not None else None
        self.description = description
        #: the folder it was read from and the layout it was read as (set by spectral.data.layouts)
        self.root: str | None = None
        self.layout: str | None = None

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.base[index]
        label = int(label.item()) if isinstance(label, Tensor) else int(label)
        if self.label_map is not None:
            label = self.label_map[label]
        return image, label

    def __repr__(self) -> str:
        return f"LabelledDataset({self.description or type(self.base).__name__}, {len(self)} items)"


# --- helpers ---------------------------------------------------------------------------------------------------

def _find_split_dir(root: Path, split: str) -> Path | None:
    for name in _SPLIT_DIRS[split]:
        p = root / name
        if p.is_dir():
            return p
    return None


def _has_class_folders(path: Path) -> bool:
    return path.is_dir() and any(c.is_dir() for c in path.iterdir())


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-/]+", " ", name).strip().lower()


def _label_map(folder_classes: list[str], class_names: Sequence[str] | None) -> list[int] | None:
    """Map ImageFolder's sorted-folder labels onto ``class_names`` order when the folders are exactly those
    classes in another order (e.g. FER2013 exported alphabetically); None when no reordering applies."""
    if not class_names or len(class_names) != len(folder_classes):
        return None
    target = {_normalise(c): i for i, c in enumerate(class_names)}
    mapped = [target.get(_normalise(c)) for c in folder_classes]
    if any(m is None for m in mapped) or mapped == list(range(len(mapped))):
        return None
    return [int(m) for m in mapped]  # type: ignore[arg-type]


def _image_folder(path: Path, transform: Callable[[Any], Tensor] | None,
                  is_valid_file: Callable[[str], bool] | None = None) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        if is_valid_file is None:
            return ImageFolder(str(path), transform=transform)
        return ImageFolder(str(path), transform=transform, is_valid_file=is_valid_file)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"{path}: not a usable ImageFolder ({exc})") from None


def _with_split(train_full: Dataset, split: Split, make_test: Callable[[], Dataset],
                make_val: Callable[[], Dataset] | None) -> Dataset:
    if split == "test":
        return make_test()
    if make_val is not None:
        return train_full if split == "train" else make_val()
    train, val = train_val_split(train_full)
    return train if split == "train" else val


# --- layouts ---------------------------------------------------------------------------------------------------

def _open_image_folder_layout(root: Path, split: Split, transform: Callable[[Any], Tensor] | None,
                              class_names: Sequence[str] | None) -> LabelledDataset | None:
    train_dir = _find_split_dir(root, "train")
    if train_dir is None or not _has_class_folders(train_dir):
        return None
    val_dir = _find_split_dir(root, "val")
    test_dir = _find_split_dir(root, "test")
    if test_dir is None and val_dir is not None:
        # dtd/{train,val}, sun397/{train,val} as the reference prepares them: val is the test set
        test_dir, val_dir = val_dir, None
    if test_dir is None:
        raise DatasetError(f"{root}: has {train_dir.name}/ but no test/ (or val/) folder")
    train_ds = _image_folder(train_dir, transform)
    folder_classes = list(train_ds.classes)

    def check(ds: Any, where: Path) -> Any:
        if list(ds.classes) != folder_classes:
            raise DatasetError(
                f"{where}: class folders differ from {train_dir} ({len(ds.classes)} vs {len(folder_classes)} classes)"
            )
        return ds

    make_test = lambda: check(_image_folder(test_dir, transform), test_dir)  # noqa: E731
    make_val = (lambda: check(_image_folder(val_dir, transform), val_dir)) if val_dir is not None else None  # noqa: E731
    ds = _with_split(train_ds, split, make_test, make_val)
    return LabelledDataset(ds, classes=folder_classes, label_map=_label_map(folder_classes, class_names),
                           description=f"ImageFolder {root} [{split}]")


def open_folder_dataset(root: str | os.PathLike[str], split: Split, *, transform: Callable[[Any], Tensor] | None,
                        dataset: str | None = None, class_names: Sequence[str] | None = None,
                        under_location: bool = False) -> LabelledDataset:
    """Open one split of a task's data from a local folder.

    ``dataset`` names the benchmark (``"MNIST"``, ``"CarsVal"``, ...; never guessed from the folder's name). A
    benchmark's data is opened only as that benchmark
    (:func:`spectral.data.layouts.open_benchmark`: its layouts only, ``root`` being the data location, the data
    set's root or its own folder; ``under_location``: ``root`` is a data location given as a default, so only the
    data set's own folder names under it are tried). Anything else must be image folders of ``train/`` and
    ``test/`` (or ``val/``). ``class_names`` (the head's order) lets image folders whose folders are the same
    classes in another order be relabelled.
    """
    if split not in ("train", "val", "test"):
        raise DatasetError(f"unknown split {split!r}; use 'train', 'val' or 'test'")
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"{path}: data folder does not exist")
    canon = canonical_dataset_name(dataset) if dataset else None
    if canon is not None:
        from spectral.data.layouts import open_benchmark

        return open_benchmark(canon, path, split, transform=transform, class_names=class_names,
                              under_location=under_location)
    ds = _open_image_folder_layout(path, split, transform, class_names)
    if ds is None:
        raise DatasetError(
            f"{path}: no recognised data layout: expected train/ and test/ (or val/) folders of class sub-folders"
            + (f" ({dataset!r} is not one of the 20 benchmarks, whose own layouts spectral also reads)"
               if dataset else "")
        )
    return ds
