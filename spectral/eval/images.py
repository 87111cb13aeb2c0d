"""Preprocessed-image cache: CLIP's resize + centre crop, stored once as uint8 pixels under ``<cache>/images/``.

CLIP's evaluation transform is ``Resize → CenterCrop → RGB → ToTensor → Normalize``. Everything before
``ToTensor`` ends in uint8 pixels, so storing those is lossless: ``ToTensor`` (÷255) and ``Normalize`` are redone
on the evaluation device (:func:`normalise`), with the same float32 operations in the same order, so accuracies
from the cache equal those from decoding the images (checked in tests/eval/test_images.py).

One entry per (data set, split, preprocessing), keyed by content: the file list (relative paths, sizes, a
BLAKE2b digest of each file's bytes), the labels and the transform's description. A changed image is a new key.

Layout of an entry ``<cache>/images/<name>-<key[:20]>/``:

- ``pixels.npy``  (N, 3, H, W) uint8, NumPy's ``.npy`` format, rows read and written in place by position;
- ``labels.npy``  (N,) int64;
- ``crc32.npy``   (N,) uint32, the CRC-32 of every image's bytes, checked on every read of that image;
- ``meta.json``   key, shape, transform, number of images, and a SHA-256 of the CRC table and labels.

Why ``.npy`` and not safetensors: an entry is written image by image while the split streams through the
evaluator, and safetensors can only save tensors that are whole in memory (87k ViT-B/32 test images are 13 GB of
pixels). ``.npy`` is a documented format with shape and dtype in its header (``numpy.lib.format`` writes it and
sizes the file), after which row i lives at a fixed offset. Rows are read with positioned reads, not through a
memory map (``np.load(mmap_mode="r")`` would work, and ``np.load`` still opens an entry): a mapped file's pages
count toward the process's resident set, so peak RSS would grow by 0.14 MB with every 224-px image read, while
read() leaves them in the kernel's page cache, outside the process (and reclaimable).

Writes are atomic: an entry is built in ``.<name>.<random>.tmp/`` beside its final folder and renamed into
place after every file is flushed (``meta.json`` last); a crash leaves only the temp folder, which is never read
(and is removed by the next build of the same key). A checksum mismatch on read raises
:class:`ImageCacheCorrupt`; the evaluator logs the miss, deletes the entry and rebuilds it: a corrupt entry is
never served.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from spectral.errors import SpectralError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


class ImageCacheCorrupt(SpectralError):
    """An image cache entry failed its checksum (torn or altered file)."""


def images_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/images`` (the "images" kind of the cache layout)."""
    from spectral.cache import default_cache_dir

    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "images"


# -- the transform, split at the uint8 boundary ------------------------------------------------------------------
@dataclass(frozen=True)
class PixelTransform:
    """The part of a CLIP transform that ends in uint8 pixels, and the normalisation that follows it."""

    pil_stage: Callable[[Any], Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str

    def pixels(self, image: Any) -> Tensor:
        """(3, H, W) uint8 of one PIL image after resize, crop and RGB conversion."""
        array = np.asarray(self.pil_stage(image), dtype=np.uint8)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def split_transform(transform: Any) -> PixelTransform | None:
    """Split ``Compose([..., ToTensor, Normalize])`` into its uint8 stage and (mean, std); None for any other
    shape of transform (then the images are decoded and preprocessed as given, without a cache)."""
    from torchvision.transforms import Compose, Normalize, ToTensor

    if not isinstance(transform, Compose):
        return None
    steps = list(transform.transforms)
    cut = next((i for i, s in enumerate(steps) if isinstance(s, ToTensor)), None)
    if cut is None or cut != len(steps) - 2 or not isinstance(steps[-1], Normalize):
        return None
    norm = steps[-1]
    mean = tuple(float(m) for m in norm.mean)
    std = tuple(float(s) for s in norm.std)
    if len(mean) != 3 or len(std) != 3:
        return None
    stage = Compose(steps[:cut])
    described = [" ".join(repr(step).split()) + repr(sorted((k, repr(v)) for k, v in vars(step).items()
                                                              if not k.startswith("_") and k != "training"))
                 for step in steps[:cut]]
    description = f"v{FORMAT_VERSION}|" + "|".join(described) + f"|mean={mean}|std={std}"
    return PixelTransform(stage, mean, std, description)  # type: ignore[arg-type]


def normalise(pixels: Tensor, mean: Sequence[float], std: Sequence[float], device: torch.device | str,
              *, channels_last: bool = False) -> Tensor:
    """uint8 (B, 3, H, W) → float32 as ``ToTensor`` + ``Normalize`` compute it, on ``device`` (the same float32
    operations in the same order: bit-identical on CPU)."""
    dev = torch.device(device)
    x = pixels.to(dev, non_blocking=dev.type == "cuda").to(torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32, device=dev)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32, device=dev)[:, None, None]
    x = x.sub_(m).div_(s)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# -- image files behind a data set ------------------------------------------------------------------------------
@dataclass
class FileSplit:
    """The image files and labels of one split, in the data set's order, with the file loader."""

    paths: list[str]
    labels: list[int]
    loader: Callable[[str], Any]
    transform: PixelTransform
    name: str = "images"

    def __len__(self) -> int:
        return len(self.paths)


def file_split(dataset: Any, name: str = "images") -> FileSplit | None:
    """The files of a folder data set (torchvision ``ImageFolder``/``DatasetFolder``, optionally inside
    ``Subset`` and :class:`spectral.data.folders.LabelledDataset`), or None when its items do not come from
    image files through a cacheable CLIP transform."""
    from torch.utils.data import Subset

    label_map = None
    indices: list[int] | None = None
    ds = dataset
    if hasattr(ds, "base") and hasattr(ds, "label_map"):  # LabelledDataset
        label_map = ds.label_map
        ds = ds.base
    while isinstance(ds, Subset):
        sub = [int(i) for i in ds.indices]
        indices = sub if indices is None else [sub[i] for i in indices]
        ds = ds.dataset
    samples = getattr(ds, "samples", None)
    loader = getattr(ds, "loader", None)
    if not isinstance(samples, list) or loader is None:
        return None
    pixel = split_transform(getattr(ds, "transform", None))
    if pixel is None:
        return None
    chosen = samples if indices is None else [samples[i] for i in indices]
    paths = [str(p) for p, _ in chosen]
    labels = [int(y) for _, y in chosen]
    if label_map is not None:
        labels = [int(label_map[y]) for y in labels]
    return FileSplit(paths, labels, loader, pixel, name)


def _file_digest(path: str) -> str:
    st = os.stat(path)
    memo = (path, st.st_size, st.st_mtime_ns)  # a per-process memo of content digests, never a cache key
    with _DIGEST_LOCK:
        if memo in _DIGESTS:
            return _DIGESTS[memo]
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    with _DIGEST_LOCK:
        _DIGESTS[memo] = digest
    return digest


def content_key(split: FileSplit) -> str:
    """SHA-256 over the transform, and per image its path relative to the common folder, size, BLAKE2b of
    its bytes and label (moving the data folder keeps the key; changing one byte of one image changes it)."""
    root = os.path.commonpath(split.paths) if split.paths else ""
    if len(split.paths) == 1:
        root = os.path.dirname(root)
    h = hashlib.sha256(split.transform.description.encode())
    h.update(f"|{len(split.paths)}".encode())
    for path, label in zip(split.paths, split.labels):
        h.update(f"\n{os.path.relpath(path, root)}|{os.path.getsize(path)}|{_file_digest(path)}|{label}".encode())
    return h.hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48] or "images"


def entry_dir(key: str, name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return images_dir(cache_dir) / f"{_slug(name)}-{key[:20]}"


# -- reading ----------------------------------------------------------------------------------------------------
def _table_digest(crc: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(crc, dtype="<u4").tobytes())
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return h.hexdigest()


class CachedImages:
    """A committed cache entry, memory-mapped; :meth:`read` returns uint8 rows after checking their CRC-32."""

    def __init__(self, path: Path, key: str) -> None:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("key") != key or meta.get("format") != FORMAT_VERSION:
            raise ImageCacheCorrupt(f"{path}: meta.json names another key or format")
        self.path = path
        self.key = key
        self.meta = meta
        self.labels_array = np.load(path / "labels.npy")
        self.crc = np.load(path / "crc32.npy")
        n = int(meta["n"])
        shape = (n, *meta["shape"])
        with open(path / "pixels.npy", "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            file_shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if tuple(file_shape) != shape or dtype != np.uint8 or fortran:
            raise ImageCacheCorrupt(f"{path / 'pixels.npy'}: shape {file_shape} {dtype}, meta.json says {shape}")
        self.row_shape = tuple(int(d) for d in meta["shape"])
        self.row_bytes = int(np.prod(self.row_shape))
        if (path / "pixels.npy").stat().st_size != self.offset + n * self.row_bytes:
            raise ImageCacheCorrupt(f"{path / 'pixels.npy'}: truncated or padded")
        self.pixels_path = path / "pixels.npy"
        if self.crc.shape != (n,) or self.labels_array.shape != (n,):
            raise ImageCacheCorrupt(f"{path}: crc32.npy / labels.npy do not hold {n} entries")
        if _table_digest(self.crc, self.labels_array) != meta.get("tables_sha256"):
            raise ImageCacheCorrupt(f"{path}: checksum table or labels altered (tables_sha256 mismatch)")

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def labels(self) -> Tensor:
        return torch.from_numpy(self.labels_array.astype(np.int64))

    def _runs(self, indices: Sequence[int] | slice) -> list[tuple[int, int]]:
        if isinstance(indices, slice):
            start, stop, step = indices.indices(len(self))
            if step != 1:
                return [(i, 1) for i in range(start, stop, step)]
            return [(start, stop - start)] if stop > start else []
        runs: list[tuple[int, int]] = []
        for i in (int(j) for j in indices):
            if runs and runs[-1][0] + runs[-1][1] == i:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((i, 1))
        return runs

    def read(self, indices: Sequence[int] | slice) -> Tensor:
        """(B, 3, H, W) uint8 of the rows at ``indices``, each checked against its CRC-32.

        Positioned reads (``os.pread``, one per run of consecutive rows) rather than a memory map: pages of a
        mapped file count toward the process's resident set, so a mapped 13 GB cache would make the RSS grow with
        every image read; read() leaves them in the page cache, outside the process."""
        runs = self._runs(indices)
        count = sum(n for _, n in runs)
        buffer = bytearray(count * self.row_bytes)
        view = memoryview(buffer)
        fd = os.open(self.pixels_path, os.O_RDONLY)
        try:
            pos = 0
            for start, n in runs:
                want_bytes = n * self.row_bytes
                got = os.preadv(fd, [view[pos:pos + want_bytes]], self.offset + start * self.row_bytes)
                if got != want_bytes:
                    raise ImageCacheCorrupt(f"{self.pixels_path}: short read at image {start}")
                pos += want_bytes
        finally:
            os.close(fd)
        rows = np.frombuffer(buffer, dtype=np.uint8).reshape(count, *self.row_shape)
        order = [i for start, n in runs for i in range(start, start + n)]
        want = self.crc[order]
        for j in range(rows.shape[0]):
            if zlib.crc32(rows[j].data) != int(want[j]):
                raise ImageCacheCorrupt(f"{self.path / 'pixels.npy'}: image {order[j]} fails its CRC-32")
        return torch.from_numpy(rows)

    def touch(self) -> None:
        """Mark as used now (the cache's least-recently-used eviction reads the folder's mtime)."""
        try:
            os.utime(self.path)
        except OSError:
            pass


def open_entry(key: str, name: str, cache_dir: str | os.PathLike[str] | None = None) -> CachedImages | None:
    """The committed entry for ``key``, or None (missing, or failing its checks: then it is deleted and the
    miss logged, so it is rebuilt and never served)."""
    path = entry_dir(key, name, cache_dir)
    if not (path / "meta.json").is_file():
        return None
    try:
        entry = CachedImages(path, key)
    except (ImageCacheCorrupt, OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        log.warning("image cache miss: %s is unreadable (%s); deleting it, it will be rebuilt", path, err)
        discard(path)
        return None
    entry.touch()
    return entry


def discard(path: Path) -> None:
    """Remove an entry (renamed aside first, so a concurrent reader never sees half a folder)."""
    if not path.exists():
        return
    aside = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        os.replace(path, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


# -- writing ----------------------------------------------------------------------------------------------------
class EntryWriter:
    """Builds one entry in a temp folder; :meth:`commit` renames it into place, :meth:`abort` removes it."""

    def __init__(self, key: str, name: str, n: int, shape: tuple[int, int, int], transform: str,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.final = entry_dir(key, name, cache_dir)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.final.parent.glob(f".{self.final.name}.*.tmp"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent))
        self.key, self.n, self.shape, self.transform = key, n, tuple(shape), transform
        header = np.lib.format.open_memmap(self.tmp / "pixels.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))
        self.offset = int(header.offset)
        del header  # the header is written and the file sized; rows go in by pwrite (see CachedImages.read)
        self.row_bytes = int(np.prod(shape))
        self.fd = os.open(self.tmp / "pixels.npy", os.O_WRONLY)
        self.crc = np.zeros(n, dtype=np.uint32)
        self.labels = np.full(n, -1, dtype=np.int64)
        self.filled = np.zeros(n, dtype=bool)

    def write(self, start: int, pixels: Tensor, labels: Tensor) -> None:
        rows = pixels.numpy()
        if tuple(rows.shape[1:]) != self.shape:
            raise ImageCacheCorrupt(f"{self.tmp}: image of shape {tuple(rows.shape[1:])}, entry holds {self.shape}")
        stop = start + rows.shape[0]
        rows = np.ascontiguousarray(rows)
        data = memoryview(rows).cast("B")
        if os.pwrite(self.fd, data, self.offset + start * self.row_bytes) != len(data):
            raise ImageCacheCorrupt(f"{self.tmp / 'pixels.npy'}: short write at image {start}")
        for j in range(rows.shape[0]):
            self.crc[start + j] = zlib.crc32(rows[j].data)
        self.labels[start:stop] = labels.numpy()
        self.filled[start:stop] = True

    def commit(self) -> Path:
        if not self.filled.all():
            raise ImageCacheCorrupt(f"{self.tmp}: only {int(self.filled.sum())} of {self.n} images written")
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        for fname, array in (("labels.npy", self.labels), ("crc32.npy", self.crc)):
            np.save(self.tmp / fname, array)
        meta = {"format": FORMAT_VERSION, "key": self.key, "n": self.n, "shape": list(self.shape),
                "transform": self.transform, "tables_sha256": _table_digest(self.crc, self.labels),
                "created": time.time()}
        for fname in ("labels.npy", "crc32.npy"):
            with open(self.tmp / fname, "rb+") as f:
                os.fsync(f.fileno())
        with open(self.tmp / "meta.json", "w") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(self.tmp, self.final)
        except OSError:  # another process committed the same key first: its entry is identical
            shutil.rmtree(self.tmp, ignore_errors=True)
        log.info("image cache: wrote %d images to %s", self.n, self.final)
        return self.final

    def abort(self) -> None:
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)
            self.fd = -1
        shutil.rmtree(self.tmp, ignore_errors=True)
