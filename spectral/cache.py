"""SVD cache: thin-SVD factors keyed by the content hash of what was decomposed.

Two levels: a memory LRU bounded in bytes, and safetensors files under ``<cache_dir>/svd/``. Files are written
atomically (:mod:`spectral.io`), so a reader sees either no entry or a complete one. Every entry records the
XXH3-128 checksum of its tensors (names, dtypes, shapes, bytes) in its header and is verified on every load from
disk: an entry that fails to load, whose checksum differs (bytes changed after the write), which predates
checksums, or whose factors disagree with each other is a logged miss, removed, and recomputed by the caller.

Recency for the least-recently-used clean (:mod:`spectral.housekeeping`) is the entry's mtime, touched on every
hit (atime is not updated on noatime mounts).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from spectral.housekeeping import note_write
from spectral.io import atomic_save_tensors, tensor_checksum
from spectral.linalg import SVD

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # 2: header carries "xxh3_128"; version-1 entries (no checksum) are recomputed
_TOUCH_EVERY_S = 60.0  # a hot entry's mtime is refreshed at most this often by one process


def default_cache_dir() -> Path:
    """``$SPECTRAL_CACHE_DIR`` or ``cache/`` at the project root (beside the ``spectral`` package)."""
    env = os.environ.get("SPECTRAL_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "cache"


class SVDCache:
    """Content-keyed store of ``(U, S, V)`` factors (see :func:`spectral.linalg.thin_svd` for the layout)."""

    def __init__(self, cache_dir: str | Path | None = None, *, memory_bytes: int = 2 << 30, persist: bool = True):
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.svd_dir = self.root / "svd"
        self.memory_bytes = memory_bytes
        self.persist = persist
        self._memory: OrderedDict[str, SVD] = OrderedDict()
        self._memory_used = 0
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.corrupt = 0  # entries found on disk but rejected (unreadable, checksum mismatch, old format)
        self._touched: dict[str, float] = {}

    # -- paths and status ---------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.svd_dir / key[:2] / f"{key}.safetensors"

    def contains(self, key: str) -> bool:
        with self._lock:
            if key in self._memory:
                return True
        return self.persist and self.path(key).is_file()

    def disk_usage(self) -> tuple[int, int]:
        """(number of entries, bytes) on disk."""
        if not self.svd_dir.is_dir():
            return 0, 0
        sizes = []
        for p in self.svd_dir.glob("*/*.safetensors"):
            try:
                sizes.append(p.stat().st_size)
            except FileNotFoundError:  # evicted by another process meanwhile
                pass
        return len(sizes), sum(sizes)

    def memory_bytes_used(self) -> int:
        """Bytes of factors held in memory now (at most ``memory_bytes``)."""
        return self._memory_used

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._memory_used = 0

    # -- get / put ----------------------------------------------------------------------------------------
    def get(self, key: str) -> SVD | None:
        """Factors for ``key`` from memory or disk, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits += 1
                self._touch(key)
                return self._memory[key]
        factors = self._load(key) if self.persist else None
        with self._lock:
            if factors is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, factors)
        return factors

    def put(self, key: str, factors: SVD, *, shape: tuple[int, int] | None = None) -> None:
        """Store factors (moved to CPU float32 for storage) in memory and, if persisting, on disk."""
        U, S, V = (f.detach().to("cpu").contiguous() for f in factors)
        if self.persist:
            tensors = {"U": U, "S": S, "V": V}
            meta = {
                "format": FORMAT_VERSION,
                "shape": ",".join(str(d) for d in (shape or (U.shape[0], V.shape[0]))),
                "xxh3_128": tensor_checksum(tensors),
            }
            atomic_save_tensors(self.path(key), tensors, meta)
            with self._lock:
                self._touched[key] = time.monotonic()
            note_write(self.root, sum(t.numel() * t.element_size() for t in tensors.values()))
        if sum(f.numel() * f.element_size() for f in (U, S, V)) <= self.memory_bytes:
            # build_cache on CUDA hands over views of a batch's pinned block: keeping one would keep the whole block
            # page-locked for as long as the entry lives
            U, S, V = (f.clone() if f.is_pinned() else f for f in (U, S, V))
        with self._lock:
            self._remember(key, (U, S, V))

    def _remember(self, key: str, factors: SVD) -> None:
        size = sum(f.numel() * f.element_size() for f in factors)
        if key in self._memory:
            self._memory.move_to_end(key)
            return
        if size > self.memory_bytes:
            return
        self._memory[key] = factors
        self._memory_used += size
        while self._memory_used > self.memory_bytes and self._memory:
            _, old = self._memory.popitem(last=False)
            self._memory_used -= sum(f.numel() * f.element_size() for f in old)

    def _touch(self, key: str) -> None:
        """Refresh the entry's mtime (its last use, for the LRU clean), at most every ``_TOUCH_EVERY_S``."""
        if not self.persist:
            return
        now = time.monotonic()
        if now - self._touched.get(key, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
            return
        self._touched[key] = now
        try:
            os.utime(self.path(key))
        except OSError:  # evicted meanwhile, or a read-only cache: recency is best effort
            pass

    def _reject(self, path: Path, ino: int, reason: str) -> None:
        log.warning("SVD cache entry %s %s; recomputing it", path, reason)
        with self._lock:
            self.corrupt += 1
        try:  # remove it, unless another process has meanwhile replaced it with a fresh entry
            if path.stat().st_ino == ino:
                path.unlink()
        except OSError:
            pass

    def _load(self, key: str) -> SVD | None:
        path = self.path(key)
        try:
            ino = path.stat().st_ino
        except FileNotFoundError:
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:  # one open: header and data of the same file
                meta = handle.metadata() or {}
                U, S, V = (handle.get_tensor(name) for name in ("U", "S", "V"))
        except FileNotFoundError:  # evicted between stat and open
            return None
        except (SafetensorError, KeyError, OSError, RuntimeError, ValueError) as err:
            self._reject(path, ino, f"is unreadable ({err})")
            return None
        recorded = meta.get("xxh3_128")
        if recorded is None:
            self._reject(path, ino, f"has no checksum (format {meta.get('format', '?')}, now {FORMAT_VERSION})")
            return None
        actual = tensor_checksum({"U": U, "S": S, "V": V})
        if actual != recorded:
            self._reject(path, ino, f"fails its checksum (XXH3-128 {actual}, recorded {recorded}): corrupted")
            return None
        r = S.shape[-1]
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != r or V.shape[1] != r:
            self._reject(path, ino, f"has inconsistent factors U{tuple(U.shape)} S{tuple(S.shape)} V{tuple(V.shape)}")
            return None
        self._touch(key)
        return U, S, V

    def __repr__(self) -> str:
        return f"SVDCache({str(self.root)!r}, memory={self._memory_used >> 20} MiB in {len(self._memory)} entries)"


def to_device(factors: SVD, device: torch.device) -> SVD:
    return tuple(f.to(device, non_blocking=True) for f in factors)  # type: ignore[return-value]

