import os

import pytest
import torch

from spectral import io as io_mod
from spectral.cache import SVDCache
from spectral.io import atomic_write_bytes
from spectral.linalg import thin_svd


def factors(seed=0, shape=(9, 5)):
    g = torch.Generator().manual_seed(seed)
    return thin_svd(torch.randn(*shape, generator=g))


def test_hit_returns_the_same_factors_from_memory_and_disk(tmp_path):
    c = SVDCache(tmp_path)
    f = factors()
    c.put("ab" * 32, f)
    for got, want in zip(c.get("ab" * 32), f):
        assert torch.equal(got, want)
    fresh = SVDCache(tmp_path)  # a new process: nothing in memory, reads the file
    assert fresh.contains("ab" * 32)
    for got, want in zip(fresh.get("ab" * 32), f):
        assert torch.equal(got, want)
    assert fresh.hits == 1 and fresh.get("cd" * 32) is None and fresh.misses == 1


def test_memory_lru_is_bounded(tmp_path):
    one = sum(t.numel() * 4 for t in factors())
    c = SVDCache(tmp_path, memory_bytes=2 * one, persist=False)
    for i in range(4):
        c.put(f"{i:02d}" * 32, factors(i))
    assert c.get("00" * 32) is None and c.get("03" * 32) is not None  # oldest evicted, not persisted


def test_a_torn_write_is_never_read_back(tmp_path, monkeypatch):
    c = SVDCache(tmp_path)
    key = "ee" * 32

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\x00\x01partial")
        raise OSError("disk full")

    monkeypatch.setattr(io_mod, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        c.put(key, factors())
    assert not c.path(key).exists()
    assert list(c.path(key).parent.iterdir()) == []  # the temporary file is removed too
    assert SVDCache(tmp_path).get(key) is None


def test_a_corrupt_entry_is_a_miss(tmp_path, caplog):
    c = SVDCache(tmp_path)
    key = "ff" * 32
    c.put(key, factors())
    data = c.path(key).read_bytes()
    c.path(key).write_bytes(data[: len(data) // 2])  # truncated by something outside our control
    assert SVDCache(tmp_path).get(key) is None
    assert "unreadable" in caplog.text


def test_atomic_write_bytes_replaces(tmp_path):
    p = tmp_path / "a" / "b.txt"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two" and os.listdir(p.parent) == ["b.txt"]


def test_disk_usage_counts_entries(tmp_path):
    c = SVDCache(tmp_path)
    assert c.disk_usage() == (0, 0)
    c.put("12" * 32, factors())
    n, size = c.disk_usage()
    assert n == 1 and size > 0
