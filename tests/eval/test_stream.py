"""Streamed evaluation and the preprocessed-image cache: equal to the former in-memory evaluation, lossless,
content-keyed, and never serving a torn or corrupt entry."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from folder_pool import FolderPool  # noqa: E402

from spectral.eval import images  # noqa: E402
from spectral.eval.evaluate import task_accuracies, task_accuracies_in_memory  # noqa: E402
from spectral.eval.stream import FileSource, eval_source, streamed_accuracies  # noqa: E402


@pytest.fixture
def folder_pool(tmp_path):
    return FolderPool(tmp_path / "data", per_class=12)


def _entries(cache: Path) -> list[Path]:
    root = cache / "images"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_streamed_equals_in_memory_on_the_micro_zoo(micro_pool):
    sd = micro_pool.finetuned_state_dict(micro_pool.task_names[0])
    old = task_accuracies_in_memory(micro_pool, sd, device="cpu")
    fast = task_accuracies(micro_pool, sd, device="cpu")
    assert eval_source(micro_pool, micro_pool.task_names[0]).kind == "memory"
    streamed = streamed_accuracies(micro_pool, sd, device="cpu", in_memory=False, batch_size=50)
    assert eval_source(micro_pool, micro_pool.task_names[0], in_memory=False).kind == "dataset"
    assert old == fast == streamed
    assert set(old[1].values()) == {len(micro_pool.dataset(micro_pool.task_names[0], "test"))}


def test_image_cache_is_lossless_and_hit_when_warm(folder_pool, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_EVAL_WORKERS", "1")  # several batches through one worker process
    cache = tmp_path / "cache"
    sd = folder_pool.finetuned_state_dict("alpha")
    old = task_accuracies_in_memory(folder_pool, sd, device="cpu")
    decoded = task_accuracies(folder_pool, sd, device="cpu", image_cache=False, batch_size=8)
    cold = task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, batch_size=8)
    assert len(_entries(cache)) == 2  # one per task's test split
    warm = task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, batch_size=8)
    src = eval_source(folder_pool, "alpha", cache_dir=cache)
    assert isinstance(src, FileSource) and (src.decoded_passes, src.cached_passes) == (1, 1)
    assert old == decoded == cold == warm
    assert old[1] == {"alpha": 36, "beta": 36}
    # the cached pixels are exactly the decoded uint8 pixels, and normalise to the data set's float images
    entry = src.cached()
    ds = folder_pool.dataset("alpha", "test")
    for i in (0, 1, 2, 35):
        x, y = ds[i]
        got = images.normalise(entry.read([i]), src.split.transform.mean, src.split.transform.std, "cpu")[0]
        assert torch.equal(got, x) and int(entry.labels[i]) == y


def test_a_changed_image_changes_the_key_even_at_the_same_size(folder_pool, tmp_path):
    split = images.file_split(folder_pool.dataset("alpha", "test"))
    before = images.content_key(split)
    assert images.content_key(images.file_split(folder_pool.dataset("alpha", "test"))) == before
    path = Path(split.paths[3])
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one byte, same size
    path.write_bytes(bytes(data))
    assert images.content_key(split) != before


def test_a_changed_image_misses_and_is_rebuilt(folder_pool, tmp_path):
    cache = tmp_path / "cache"
    sd = folder_pool.base_state_dict()
    task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"])
    first = _entries(cache)
    path = Path(images.file_split(folder_pool.dataset("alpha", "test")).paths[0])
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path, format="JPEG")
    fresh = FolderPool(folder_pool.root)  # a new process would see the new file
    src = eval_source(fresh, "alpha", cache_dir=cache)
    assert src.cached() is None  # the old entry does not match the new content
    task_accuracies(fresh, sd, device="cpu", cache_dir=cache, tasks=["alpha"])
    assert src.decoded_passes == 1 and len(_entries(cache)) == 2 and first[0] in _entries(cache)


def test_an_interrupted_build_leaves_nothing_readable(folder_pool, tmp_path):
    cache = tmp_path / "cache"
    sd = folder_pool.base_state_dict()

    def crash(i, n, text):
        if i >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"], batch_size=8,
                        progress=crash)
    assert _entries(cache) == [] and list((cache / "images").iterdir()) == []  # temp folder removed too
    expected = task_accuracies(folder_pool, sd, device="cpu", image_cache=False, tasks=["alpha"])
    assert task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"]) == expected


def test_a_torn_entry_without_meta_is_never_read(folder_pool, tmp_path):
    cache = tmp_path / "cache"
    sd = folder_pool.base_state_dict()
    task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"])
    (entry,) = _entries(cache)
    (entry / "meta.json").unlink()  # as if the process died before the last file of the entry
    src = eval_source(folder_pool, "alpha", cache_dir=cache)
    assert src.cached() is None


def test_a_corrupt_entry_is_logged_discarded_and_rebuilt(folder_pool, tmp_path, caplog):
    cache = tmp_path / "cache"
    sd = folder_pool.base_state_dict()
    expected = task_accuracies(folder_pool, sd, device="cpu", image_cache=False, tasks=["alpha"])
    task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"])
    (entry,) = _entries(cache)
    pixels = np.load(entry / "pixels.npy", mmap_mode="r+")
    pixels[5, 0, 0, 0] ^= 0x01  # one bit of one image
    pixels.flush()
    del pixels
    src = eval_source(folder_pool, "alpha", cache_dir=cache)
    with pytest.raises(images.ImageCacheCorrupt):
        src.cached().read([5])
    with caplog.at_level(logging.WARNING):
        got = task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, tasks=["alpha"])
    assert got == expected
    assert any("image cache miss" in r.message for r in caplog.records)
    assert src.cached() is not None and src.cached().read([5]) is not None  # rebuilt, intact


def test_altered_checksum_table_is_a_miss(folder_pool, tmp_path):
    cache = tmp_path / "cache"
    task_accuracies(folder_pool, folder_pool.base_state_dict(), device="cpu", cache_dir=cache, tasks=["alpha"])
    (entry,) = _entries(cache)
    crc = np.load(entry / "crc32.npy")
    crc[0] ^= 1
    np.save(entry / "crc32.npy", crc)
    assert eval_source(folder_pool, "alpha", cache_dir=cache).cached() is None
    assert _entries(cache) == []  # discarded, so the next full pass rebuilds it


def test_subsample_reads_only_the_chosen_images(folder_pool, tmp_path):
    cache = tmp_path / "cache"
    sd = folder_pool.base_state_dict()
    accs, counts = task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, subsample=9)
    assert counts == {"alpha": 9, "beta": 9}
    assert _entries(cache) == []  # a subsample never builds the cache
    task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache)
    assert task_accuracies(folder_pool, sd, device="cpu", cache_dir=cache, subsample=9) == (accs, counts)


def test_heap_releaser_trims_at_most_once_per_interval():
    from spectral.heap import heap_releaser

    now = [100.0]
    calls: list[int] = []
    release = heap_releaser(interval_s=0.5, clock=lambda: now[0], trim=calls.append)
    release()                      # the first batch always releases
    now[0] += 0.2
    release()                      # 0.2 s later: too soon
    now[0] += 0.3
    release()                      # 0.5 s after the first: due again
    assert calls == [0, 0]


def test_heap_releaser_calls_glibc_where_present():
    import ctypes.util

    from spectral.heap import heap_releaser, trim_heap

    release = heap_releaser(interval_s=0.0)
    release()  # must not raise, with glibc or without it
    if sys.platform.startswith("linux") and ctypes.util.find_library("c"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        assert hasattr(libc, "malloc_trim")  # the streamed evaluation's release is real here, not the no-op
        assert trim_heap() is True


def test_streamed_evaluation_releases_the_heap_after_every_batch(folder_pool, tmp_path, monkeypatch):
    from spectral.eval import stream

    monkeypatch.setenv("SPECTRAL_EVAL_WORKERS", "0")
    sd = folder_pool.base_state_dict()
    released: list[int] = []
    monkeypatch.setattr(stream, "release_heap", lambda: released.append(1))
    cold, counts = streamed_accuracies(folder_pool, sd, device="cpu", batch_size=8, cache_dir=tmp_path / "cache")
    batches, images = sum(-(-n // 8) for n in counts.values()), sum(counts.values())
    # after every batch, and after every decoded image (in-process here; one more per task: its shape probe)
    assert len(released) == batches + images + len(counts)
    released.clear()
    warm, _ = streamed_accuracies(folder_pool, sd, device="cpu", batch_size=8, cache_dir=tmp_path / "cache")
    assert len(released) == batches > len(counts)  # the image cache decodes nothing
    assert warm == cold


def test_pixel_files_pickle_after_use(folder_pool):
    """Spawned DataLoader workers receive the data set pickled; its per-process heap releaser must not travel."""
    import pickle

    from spectral.eval.images import file_split
    from spectral.eval.stream import _PixelFiles

    split = file_split(folder_pool.dataset(folder_pool.task_names[0], "test"))
    files = _PixelFiles(split)
    pixels, label = files[0]
    copy = pickle.loads(pickle.dumps(files))
    again, label_again = copy[0]
    assert torch.equal(pixels, again) and label == label_again
