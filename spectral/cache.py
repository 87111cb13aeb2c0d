"""SVD cache: thin-SVD factors keyed by the content hash of what was decomposed.

Two levels: a memory LRU bounded in bytes, and safetensors files under ``<cache_dir>/svd/``. Files are written to a
temporary name in the same folder and renamed into place (``os.replace`` is atomic), so a reader sees either no
entry or a complete one; an entry that fails to load or whose factors disagree with the recorded shape is
treated as a miss, logged, and recomputed.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from spectral.linalg import SVD

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def default_cache_dir() -> Path:
    """``$SPECTRAL_CACHE_DIR`` or ``cache/`` at the project root (beside the ``spectral`` package)."""
    env = os.environ.get("SPECTRAL_CACHE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "cache"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; cache files are ordinary, shareable files
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        files = [p for p in self.svd_dir.glob("*/*.safetensors")]
        return len(files), sum(p.stat().st_size for p in files)

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
        U, S, V = (f.detach().to("cpu") for f in factors)
        if self.persist:
            meta = {
                "format": FORMAT_VERSION,
                "shape": ",".join(str(d) for d in (shape or (U.shape[0], V.shape[0]))),
            }
            atomic_save_tensors(self.path(key), {"U": U, "S": S, "V": V}, meta)
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

    def _load(self, key: str) -> SVD | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            U, S, V = tensors["U"], tensors["S"], tensors["V"]
        except (SafetensorError, KeyError, OSError, RuntimeError, ValueError) as err:
            log.warning("SVD cache entry %s is unreadable (%s); recomputing it", path, err)
            return None
        r = S.shape[-1]
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != r or V.shape[1] != r:
            log.warning(
                "SVD cache entry %s has inconsistent factors U%s S%s V%s; recomputing it",
                path, tuple(U.shape), tuple(S.shape), tuple(V.shape),
            )
            return None
        return U, S, V

    def __repr__(self) -> str:
        return f"SVDCache({str(self.root)!r}, memory={self._memory_used >> 20} MiB in {len(self._memory)} entries)"


def to_device(factors: SVD, device: torch.device) -> SVD:
    return tuple(f.to(device, non_blocking=True) for f in factors)  # type: ignore[return-value]
