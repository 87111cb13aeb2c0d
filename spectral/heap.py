"""Handing freed heap memory back to the OS (glibc's ``malloc_trim``).

PyTorch's CPU tensors come from glibc's malloc, which keeps freed blocks in its arenas for reuse. Where a process
frees a lot and goes on with smaller allocations (evaluation batches of varying shapes; a merge's factors dropped
before the evaluation), the resident set otherwise stays at its high-water mark. Without glibc (macOS, musl)
every function here does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import math
import mmap
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np


def _libc_function(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """A glibc function through ctypes, or None where there is none (macOS, musl)."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return fn


_TRIM = _libc_function("malloc_trim", [ctypes.c_size_t])


def trim_heap() -> bool:
    """Return the freed heap to the OS now; False where there is no glibc."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


#: :func:`heap_releaser` hands freed heap memory back at most this often (seconds): a CPU batch takes about 2 s,
#: and the release itself a few milliseconds
HEAP_RELEASE_INTERVAL_S = 0.5


def throttled(fn: Callable[[], Any], *, interval_s: float = HEAP_RELEASE_INTERVAL_S, share: float = 0.05,
              clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """``fn`` for calling in a loop: it runs at most once per ``interval_s``, and never more than ``share`` of the
    time (after a call that took d seconds, the next waits at least d / share)."""
    next_due = [-math.inf]

    def maybe() -> None:
        start = clock()
        if start >= next_due[0]:
            fn()
            next_due[0] = start + max(interval_s, (clock() - start) / share)

    return maybe


def heap_releaser(*, interval_s: float = HEAP_RELEASE_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                  trim: Callable[[int], Any] | None = None) -> Callable[[], None]:
    """A function to call after every batch: it returns the freed heap to the OS at most once per ``interval_s``.

    Batches of varying shapes (the last batch of every task is shorter) fragment glibc's arenas, so without it
    the resident set grows with the number of batches instead of staying at one batch's worth."""
    trim = trim if trim is not None else _TRIM
    if trim is None:
        return lambda: None
    return throttled(lambda: trim(0), interval_s=interval_s, clock=clock)


#: This process's releaser. Module state, so each DataLoader worker (forked: a copy; spawned: a fresh import) has
#: its own throttle, shared by everything that decodes or evaluates in that process.
release_heap = heap_releaser()


# -- checkpoint mappings ------------------------------------------------------------------------------------------
# Checkpoints are memory-mapped (spectral.checkpoints.formats), so a merge reads only the layers it needs. But every
# page it has read stays mapped, and counts in the resident set, for as long as the checkpoint is open: a TaskSet of
# ViT-B/32 × 8 holds nine 351 MB files, so validating and merging it left 3.4 GB of file pages resident. They are
# clean page-cache pages, cheap to fault back in, so the process lets go of them from time to time.

_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class _Mapping:
    owners: "tuple[weakref.ref[Any], ...]"  # any alive ⇒ the mapping is alive (its mmap object, or tensors in it)
    address: int
    length: int

    def alive(self) -> bool:
        return any(ref() is not None and not getattr(ref(), "closed", False) for ref in self.owners)


#: tracked private file mappings by id; an entry leaves when its last owner is garbage collected
_MAPPINGS: dict[int, _Mapping] = {}
_next_id = itertools.count()


def track_range(owners: Sequence[Any], address: int, length: int) -> None:
    """Let :func:`release_mapped_pages` drop the resident pages of a private file mapping at
    ``[address, address + length)`` (page-aligned) while any of ``owners`` (objects that keep it mapped) is alive."""
    key = next(_next_id)

    def forget(_ref: Any) -> None:
        entry = _MAPPINGS.get(key)
        if entry is not None and not entry.alive():
            del _MAPPINGS[key]

    _MAPPINGS[key] = _Mapping(tuple(weakref.ref(o, forget) for o in owners), address, length)


def track_mapping(mapping: mmap.mmap) -> None:
    """:func:`track_range` for a writable-copy ``mmap`` object (safetensors checkpoints)."""
    if len(mapping) == 0:
        return
    try:
        view = (ctypes.c_char * len(mapping)).from_buffer(mapping)
    except (TypeError, ValueError, BufferError):
        return
    address = ctypes.addressof(view)
    del view
    track_range([mapping], address, len(mapping))


def track_tensor_files(tensors: Iterable[Any]) -> int:
    """Track the private file mappings that hold these tensors' storages (``torch.load(..., mmap=True)`` maps the
    whole file), found in /proc/self/maps; each stays tracked while any of its tensors is alive. Returns how many
    mappings were found (0 where the tensors live in ordinary memory)."""
    try:
        with open("/proc/self/maps") as f:
            maps = []
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5].startswith("/") and fields[1][3] == "p":
                    low, high = (int(x, 16) for x in fields[0].split("-"))
                    maps.append((low, high))
    except (OSError, ValueError, IndexError):
        return 0
    found: dict[tuple[int, int], list[Any]] = {}
    for tensor in tensors:
        pointer = int(tensor.data_ptr())
        for low, high in maps:
            if low <= pointer < high:
                found.setdefault((low, high), []).append(tensor)
                break
    for (low, high), owners in found.items():
        track_range(owners, low, high - low)
    return len(found)


def _written_pages(address: int, length: int) -> bool | None:
    """Whether any page of a private file mapping was written (is now a private anonymous copy), from
    /proc/self/pagemap (bit 63: present; bit 61: file page); None where that cannot be read."""
    pages = -(-length // _PAGE)
    try:
        with open("/proc/self/pagemap", "rb", buffering=0) as f:
            f.seek(address // _PAGE * 8)
            raw = f.read(pages * 8)
    except OSError:
        return None
    if len(raw) != pages * 8:
        return None
    entries = np.frombuffer(raw, dtype=np.uint64)
    present, file_page = np.uint64(1 << 63), np.uint64(1 << 61)
    return bool(((entries & present) != 0)[(entries & file_page) == 0].any())


_MADVISE = (_libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])
            if hasattr(mmap, "MADV_DONTNEED") else None)


def release_mapped_pages() -> int:
    """Drop this process's resident pages of every tracked checkpoint mapping (``MADV_DONTNEED``); returns the
    bytes of mappings released. A mapping with a page written in place is skipped: for a private mapping,
    dropping would undo the write. Later reads fault the pages back in from the page cache."""
    if _MADVISE is None:
        return 0
    released = 0
    for entry in list(_MAPPINGS.values()):
        owners = [ref() for ref in entry.owners]  # held: the mapping cannot go away during the call
        if not entry.alive() or _written_pages(entry.address, entry.length) is not False:
            continue
        if _MADVISE(entry.address, entry.length, mmap.MADV_DONTNEED) == 0:
            released += entry.length
        del owners
    return released


def release_memory() -> None:
    """Hand back everything this module can: checkpoint pages now, then the freed heap."""
    release_mapped_pages()
    trim_heap()


#: this process's throttled release, for loops over layers (a merge, a cache build, a validation)
#: (checking the pages of twenty 1.2 GB ViT-L/14 files takes tens of ms: hence the share of the time)
release_mapped_pages_often = throttled(release_mapped_pages)
