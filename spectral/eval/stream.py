"""Streamed evaluation: memory that does not grow with the test set.

Each task's split is read through an :class:`EvalSource`, one batch at a time, and only the number of correct
predictions is kept, so peak memory is the model plus a few batches whatever the split's size:

- :class:`FileSource` (image files: ImageFolder layouts, RESISC45): the first full pass decodes the files in
  ``DataLoader`` worker processes (resize + centre crop → uint8), evaluates them and writes them into the
  preprocessed-image cache (:mod:`spectral.eval.images`) in the same pass; later passes read the cached uint8
  pixels with positioned reads. Normalisation (÷255, CLIP mean/std) happens on the evaluation device.
- :class:`MemorySource`: tiny in-memory splits (the demo and micro zoo's generated images, ≤ 256 MiB as float32)
  stay in memory as one tensor, as before: the dashboard evaluates them on every slider move.
- :class:`DatasetSource`: any other data set, decoded and preprocessed by its own ``__getitem__`` in workers.

On CUDA the forward pass runs under autocast (bf16, else fp16), in channels_last, from pinned memory with
non-blocking copies. A ``subsample`` (see :func:`spectral.metrics.estimate.stratified_subsample`) reads only
the chosen images.

Between batches the freed heap is handed back to the OS (:func:`spectral.heap.heap_releaser`). Without that,
glibc's allocator keeps the freed activation buffers of earlier batches, and peak RSS crept up with the number of
batches evaluated: in ``bench/scale.py`` it grew by 0.08 MB per test image (warm) and 0.17 MB per test image (cold) between 438 and
1,750 images; with the release it is flat (at most 0.016 MB per image, noise, and no change from 4,588 to 13,765).
"""
from __future__ import annotations

import abc
import contextlib
import logging
import math
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from spectral.eval import images as image_cache
from spectral.heap import release_heap
from spectral.linalg import resolve_device
from spectral.pool import ModelPool, strip_visual_prefix

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: splits up to this size (float32 bytes) may be held in memory (the demo and micro zoo)
IN_MEMORY_MAX_BYTES = 256 * 2**20
#: a streamed batch holds at most this many float32 bytes of input images: on CPU 32 MiB (55 images at 224 px:
#: ViT activations, not the inputs, dominate peak memory, and CPU throughput is flat beyond a few dozen images);
#: on CUDA 256 MiB (445 images at 224 px) to keep the device busy
STREAM_BATCH_BYTES = {"cpu": 32 * 2**20, "cuda": 256 * 2**20}
SUBSAMPLE_SEED = 0


def default_workers() -> int:
    """DataLoader worker processes: ``$SPECTRAL_EVAL_WORKERS``, else one per core but one, at most 8."""
    env = os.environ.get("SPECTRAL_EVAL_WORKERS")
    if env:
        return max(0, int(env))
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _stream_batch(batch_size: int, image_shape: Sequence[int], device: torch.device) -> int:
    per_image = 4 * math.prod(int(s) for s in image_shape)
    budget = STREAM_BATCH_BYTES["cuda" if device.type == "cuda" else "cpu"]
    return max(1, min(batch_size, budget // max(1, per_image)))


def _loader(ds: Dataset, indices: Tensor | None, batch_size: int, workers: int, device: torch.device) -> DataLoader:
    n = len(indices) if indices is not None else len(ds)  # type: ignore[arg-type]
    workers = workers if n > batch_size else 0  # one batch: a worker process costs more than it saves
    return DataLoader(ds, batch_size=batch_size, shuffle=False,
                      sampler=indices.tolist() if indices is not None else None,
                      num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, prefetch_factor=2 if workers else None)


class EvalSource(abc.ABC):
    """One split of one task, read batch by batch."""

    #: "memory", "files" or "dataset" (reported by benchmarks and the CLI's logs)
    kind: str = ""

    @property
    @abc.abstractmethod
    def labels(self) -> Tensor:
        """Every label of the split, in order (for stratified subsamples)."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @abc.abstractmethod
    def batches(self, indices: Tensor | None, device: torch.device, batch_size: int,
                channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """(preprocessed float32 images on ``device``, labels on CPU) of the split or of ``indices``."""


class MemorySource(EvalSource):
    kind = "memory"

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images.float().contiguous()
        self._labels = labels.long().contiguous()

    @property
    def labels(self) -> Tensor:
        return self._labels

    def batches(self, indices: Tensor | None, device: torch.device, batch_size: int,
                channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(indices) if indices is not None else len(self)
        for start in range(0, n, batch_size):
            if indices is None:
                x, y = self.images[start:start + batch_size], self._labels[start:start + batch_size]
            else:
                sel = indices[start:start + batch_size]
                x, y = self.images.index_select(0, sel), self._labels.index_select(0, sel)
            x = x.to(device, non_blocking=True)
            yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


class _PixelFiles(Dataset):
    """Items ``(uint8 (3, H, W) after resize + crop, label)`` of a :class:`~spectral.eval.images.FileSplit`."""

    def __init__(self, split: image_cache.FileSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        pixels = self.split.transform.pixels(self.split.loader(self.split.paths[i]))
        release_heap()  # decoding buffers fragment a worker's heap just as activations do the main process's
        return pixels, self.split.labels[i]


class FileSource(EvalSource):
    """Image files, decoded in workers on the first full pass and cached as uint8 (see the module docstring)."""

    kind = "files"

    def __init__(self, split: image_cache.FileSplit, *, cache_dir: str | os.PathLike[str] | None = None,
                 use_cache: bool = True, workers: int | None = None, progress: Progress | None = None) -> None:
        self.split = split
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.workers = default_workers() if workers is None else workers
        self._labels = torch.tensor(split.labels, dtype=torch.long)
        self._key: str | None = None
        self._shape: tuple[int, int, int] | None = None
        #: how often this source decoded files, and read the cache (tests and benchmarks read these)
        self.decoded_passes = 0
        self.cached_passes = 0

    @property
    def labels(self) -> Tensor:
        return self._labels

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = image_cache.content_key(self.split)
        return self._key

    def cached_path(self):  # noqa: ANN201 - a Path
        return image_cache.entry_dir(self.key, self.split.name, self.cache_dir)

    def cached(self) -> image_cache.CachedImages | None:
        return image_cache.open_entry(self.key, self.split.name, self.cache_dir) if self.use_cache else None

    def _image_shape(self) -> tuple[int, int, int]:
        if self._shape is None:
            self._shape = tuple(_PixelFiles(self.split)[0][0].shape)  # type: ignore[assignment]
        return self._shape  # type: ignore[return-value]

    def batches(self, indices: Tensor | None, device: torch.device, batch_size: int,
                channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        t = self.split.transform
        entry = self.cached()
        batch = _stream_batch(batch_size, self._image_shape(), device)
        if entry is not None:
            self.mode = "cached pixels"
            self.cached_passes += 1
            n = len(indices) if indices is not None else len(entry)
            for start in range(0, n, batch):
                sel: Any = slice(start, min(n, start + batch)) if indices is None \
                    else indices[start:start + batch].tolist()
                pixels = entry.read(sel)
                if device.type == "cuda":
                    pixels = pixels.pin_memory()
                yield normalise_batch(pixels, t, device, channels_last), self._labels[sel]
            return
        self.decoded_passes += 1
        writer = None
        self.mode = "decoding images"
        if self.use_cache and indices is None:
            self.mode = "decoding images and writing the image cache"
            writer = image_cache.EntryWriter(self.key, self.split.name, len(self), self._image_shape(),
                                             t.description, self.cache_dir)
        committed = False
        try:
            start = 0
            for pixels, labels in _loader(_PixelFiles(self.split), indices, batch, self.workers, device):
                if writer is not None:
                    writer.write(start, pixels, labels)
                start += pixels.shape[0]
                yield normalise_batch(pixels, t, device, channels_last), labels
            if writer is not None:
                writer.commit()
                committed = True
        finally:
            if writer is not None and not committed:
                writer.abort()


def normalise_batch(pixels: Tensor, t: image_cache.PixelTransform, device: torch.device,
                    channels_last: bool) -> Tensor:
    return image_cache.normalise(pixels, t.mean, t.std, device, channels_last=channels_last)


class DatasetSource(EvalSource):
    """Any data set of ``(float image, label)`` items, preprocessed by its own ``__getitem__`` in workers."""

    kind = "dataset"

    def __init__(self, dataset: Dataset, *, workers: int | None = None) -> None:
        self.dataset = dataset
        self.workers = default_workers() if workers is None else workers
        self._labels: Tensor | None = None

    @property
    def labels(self) -> Tensor:
        if self._labels is None:
            self._labels = dataset_labels(self.dataset)
        return self._labels

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def batches(self, indices: Tensor | None, device: torch.device, batch_size: int,
                channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        shape = self.dataset[0][0].shape
        for x, y in _loader(self.dataset, indices, _stream_batch(batch_size, shape, device), self.workers, device):
            x = x.float().to(device, non_blocking=True)
            yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), torch.as_tensor(y).long()


def dataset_labels(ds: Any) -> Tensor:
    """All labels of a data set without decoding images where it says them (``labels``, ``targets``, a
    ``TensorDataset``'s second tensor, a ``Subset`` of those); else by reading every item once."""
    from torch.utils.data import Subset

    if isinstance(ds, Subset):
        return dataset_labels(ds.dataset)[torch.as_tensor(list(ds.indices), dtype=torch.long)]
    if isinstance(ds, TensorDataset) and len(ds.tensors) > 1:
        return ds.tensors[1].long()
    label_map = getattr(ds, "label_map", None)
    if hasattr(ds, "base") and hasattr(ds, "label_map"):
        base = dataset_labels(ds.base)
        return base if label_map is None else torch.as_tensor(label_map, dtype=torch.long)[base]
    for attr in ("labels", "targets"):
        value = getattr(ds, attr, None)
        if value is not None and not callable(value):
            return torch.as_tensor(value, dtype=torch.long).flatten()
    if hasattr(ds, "samples") and isinstance(ds.samples, list):
        return torch.tensor([int(y) for _, y in ds.samples], dtype=torch.long)
    log.info("reading every item of %r once to learn its labels", ds)
    return torch.tensor([int(ds[i][1]) for i in range(len(ds))], dtype=torch.long)


def _small_in_memory(ds: Any) -> tuple[Tensor, Tensor] | None:
    if isinstance(ds, TensorDataset) and len(ds.tensors) > 1:
        x, y = ds.tensors[0], ds.tensors[1]
        return (x, y) if x.numel() * 4 <= IN_MEMORY_MAX_BYTES else None
    if hasattr(ds, "tensors") and callable(ds.tensors):
        stored = getattr(ds, "images", None)
        numel = stored.numel() if isinstance(stored, Tensor) else len(ds) * ds[0][0].numel()
        if numel * 4 <= IN_MEMORY_MAX_BYTES:
            return ds.tensors()
    return None


def eval_source(pool: ModelPool, task: str, split: str = "test", *, cache_dir: str | os.PathLike[str] | None = None,
                image_cache_on: bool = True, in_memory: bool = True) -> EvalSource:
    """The source of one task's split (memoised on the pool object); see the module docstring for the kinds."""
    store: dict[tuple, EvalSource] = pool.__dict__.setdefault("_spectral_eval_sources", {})
    key = (task, split, str(cache_dir), image_cache_on, in_memory)
    if key not in store:
        ds = pool.dataset(task, split)  # type: ignore[arg-type]
        files = image_cache.file_split(ds, name=f"{task}-{split}")  # content-keyed: pools share entries
        source: EvalSource
        if files is not None:
            source = FileSource(files, cache_dir=cache_dir, use_cache=image_cache_on)
        else:
            held = _small_in_memory(ds) if in_memory else None
            source = MemorySource(*held) if held is not None else DatasetSource(ds)
        classes = getattr(ds, "classes", None)
        source.classes = list(classes) if classes is not None else None  # type: ignore[attr-defined]
        store[key] = source
    return store[key]


def subsample_indices(source: EvalSource, subsample: int | None, seed: int = SUBSAMPLE_SEED) -> Tensor | None:
    """The stratified subsample of a source, or None for the whole split (no subsample, or one as large)."""
    if not subsample or subsample >= len(source):
        return None
    from spectral.metrics.estimate import stratified_subsample

    return stratified_subsample(source.labels, int(subsample), seed)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _encoder(pool: ModelPool, device: torch.device) -> nn.Module:
    cache: dict[str, nn.Module] = pool.__dict__.setdefault("_spectral_eval_encoder", {})
    key = str(device)
    if key not in cache:
        enc = pool.build_image_encoder().to(device).eval()
        if device.type == "cuda":
            enc = enc.to(memory_format=torch.channels_last)
        cache[key] = enc
    return cache[key]


def streamed_accuracies(
    pool: ModelPool,
    state_dict: Mapping[str, Tensor],
    *,
    tasks: Sequence[str] | None = None,
    split: str = "test",
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    progress: Progress | None = None,
    subsample: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    image_cache_on: bool = True,
    in_memory: bool = True,
) -> tuple[dict[str, float], dict[str, int]]:
    """(accuracy per task, number of images it rests on) of a canonical image-tower state dict on ``split``, or
    on a stratified ``subsample`` of each task's split; images streamed task by task, never concatenated."""
    progress = progress or (lambda i, n, t: None)
    tasks = list(tasks) if tasks is not None else list(pool.task_names)
    dev = resolve_device(device)
    encoder = _encoder(pool, dev)
    encoder.load_state_dict(strip_visual_prefix(dict(state_dict)), strict=True)
    encoder.eval()
    channels_last = dev.type == "cuda"
    sources = {t: eval_source(pool, t, split, cache_dir=cache_dir, image_cache_on=image_cache_on,
                              in_memory=in_memory) for t in tasks}
    chosen = {t: subsample_indices(s, subsample) for t, s in sources.items()}
    total = sum(len(chosen[t]) if chosen[t] is not None else len(sources[t]) for t in tasks)
    done = 0
    accs: dict[str, float] = {}
    counts: dict[str, int] = {}
    with torch.inference_mode():
        for t in tasks:
            head = pool.head(t).to(dev, torch.float32)
            classes = getattr(sources[t], "classes", None)
            if classes is not None and len(classes) != head.shape[0]:
                from spectral.data.folders import DatasetError

                raise DatasetError(f"task {t!r}: its {split} data has {len(classes)} classes, its head has "
                                   f"{head.shape[0]}: the data is not this task's")
            for attempt in (0, 1):
                correct, seen = 0, 0
                try:
                    for x, y in sources[t].batches(chosen[t], dev, batch_size, channels_last):
                        with _autocast(dev):
                            features = encoder(x)
                        pred = (features.float() @ head.T).argmax(1).cpu()
                        correct += int((pred == y).sum())
                        seen += int(y.numel())
                        del x, features
                        release_heap()
                        mode = getattr(sources[t], "mode", "")
                        progress(done + seen, total, f"evaluating {t}" + (f" ({mode})" if mode else ""))
                    break
                except image_cache.ImageCacheCorrupt as err:
                    if attempt:
                        raise
                    log.warning("image cache miss (%s): deleting the entry and decoding the images again", err)
                    image_cache.discard(sources[t].cached_path())  # type: ignore[attr-defined]
            done += seen
            accs[t] = correct / seen if seen else math.nan
            counts[t] = seen
    return accs, counts
