"""spectral.heap: letting go of freed heap and of the resident pages of memory-mapped checkpoints."""
from __future__ import annotations

import mmap
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from spectral import heap
from spectral.checkpoints.formats import read_object

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/pagemap and MADV_DONTNEED")


def _rss_file_kb() -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("RssFile:")))


@pytest.fixture(params=["safetensors", "torch"])
def checkpoint(request, tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(2048, 1024, generator=g), "b": torch.randn(1024, 1024, generator=g)}  # 12 MiB
    if request.param == "safetensors":
        path = tmp_path / "model.safetensors"
        save_file(tensors, str(path))
    else:  # a torch.save zip: torch.load maps it itself
        path = tmp_path / "model.pt"
        torch.save(tensors, path)
    return path, tensors


def _mapping_of(path):
    size = path.stat().st_size
    (mapping,) = [m for m in heap._MAPPINGS.values() if m.alive() and 0 <= m.length - size < 2 * mmap.PAGESIZE]
    return mapping


@linux_only
def test_released_pages_leave_the_resident_set_and_read_back_unchanged(checkpoint):
    path, tensors = checkpoint
    state = read_object(path)
    heap.release_mapped_pages()  # other tests' mappings, if any, out of the way
    before = _rss_file_kb()
    assert all(torch.equal(state[k], tensors[k]) for k in tensors)  # reads every page
    touched = _rss_file_kb()
    assert touched - before >= 10 * 1024  # the 12 MiB of tensors are now resident
    assert heap.release_mapped_pages() >= path.stat().st_size
    assert touched - _rss_file_kb() >= 10 * 1024
    assert all(torch.equal(state[k], tensors[k]) for k in tensors)  # faulted back in from the page cache


@linux_only
def test_a_mapping_written_in_place_is_never_dropped(checkpoint):
    path, tensors = checkpoint
    state = read_object(path)
    mapping = _mapping_of(path)
    assert heap._written_pages(mapping.address, mapping.length) is False
    state["b"][3, 5] = 42.0  # a private copy of that page: dropping it would undo the write
    assert heap._written_pages(mapping.address, mapping.length) is True
    heap.release_mapped_pages()
    assert float(state["b"][3, 5]) == 42.0
    assert torch.equal(state["a"], tensors["a"])
    reread = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path)
    assert torch.equal(reread["b"], tensors["b"])  # and the file itself is untouched


def test_mappings_are_forgotten_when_their_checkpoint_is(checkpoint):
    import gc

    path, _ = checkpoint
    state = read_object(path)
    mapping = _mapping_of(path)
    assert mapping in heap._MAPPINGS.values()
    del state
    gc.collect()
    assert mapping not in heap._MAPPINGS.values()


def test_the_loop_release_is_throttled_by_interval_and_by_its_own_cost():
    step, cost = 0.125, 0.125  # binary fractions: the fake clock adds up exactly
    now = [0.0]
    slow: list[float] = []

    def slow_release():
        slow.append(now[0])
        now[0] += cost  # at most 5 % of the time: 0.125 s of work, then 2.5 s without

    release = heap.throttled(slow_release, interval_s=0.5, share=0.05, clock=lambda: now[0])
    for _ in range(100):
        release()
        now[0] += step
    gaps = [b - a for a, b in zip(slow, slow[1:])]
    assert len(slow) >= 4 and all(2.5 <= g < 2.5 + step + cost for g in gaps)
    fast: list[float] = []
    quick = heap.throttled(lambda: fast.append(now[0]), interval_s=0.5, clock=lambda: now[0])
    for _ in range(40):
        quick()
        now[0] += step
    assert len(fast) == 10 and all(g == 0.5 for g in (b - a for a, b in zip(fast, fast[1:])))
