"""Cache housekeeping: size on disk by kind, cleaning by kind / pool / least recent use, and an optional size budget.

Layout of ``<cache>`` (:func:`spectral.cache.default_cache_dir`), one *entry* per line:

========  =========================================================  ==========================================
kind      entries                                                    deleted by
========  =========================================================  ==========================================
svd       ``svd/<2 hex>/<key>.safetensors``                          clean (kind, pool, LRU) and the budget
images    each file or folder directly under ``images/``             clean (kind, LRU) and the budget
heads     each file or folder directly under ``heads/``              clean (kind, LRU) and the budget
zoo       each folder directly under ``zoo/``                        ``clean --kind zoo`` only
results   ``results.sqlite*`` and ``adapt/``                         never
========  =========================================================  ==========================================

Anything else in the folder is counted as ``other`` and never touched. An entry's last use is its mtime (or, for a
folder, the newest mtime of the folder and its direct children): readers refresh it on a hit with :func:`touch`,
because atime is not updated on noatime mounts. Entries are removed atomically (:func:`spectral.io.remove_atomically`).

The budget: when ``SPECTRAL_CACHE_MAX_GB`` is set, the whole folder is kept at or under that size after writes by
evicting the least recently used evictable entries (svd, images, heads). Results and the zoo count towards the
size but are never evicted; if they alone exceed the budget, a warning says so.
"""
from __future__ import annotations

import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from spectral.errors import SpectralError
from spectral.io import find_temporaries, is_temporary, remove_atomically

log = logging.getLogger(__name__)

KINDS = ("svd", "images", "heads", "zoo", "results")
EVICTABLE = ("svd", "images", "heads")  # what the LRU clean and the budget may delete
CLEANABLE = EVICTABLE + ("zoo",)  # what ``clean --kind`` may delete; results never
BUDGET_ENV = "SPECTRAL_CACHE_MAX_GB"


@dataclass(frozen=True)
class Entry:
    kind: str
    path: Path
    size: int
    last_used: float  # seconds since the epoch


# -- listing --------------------------------------------------------------------------------------------------------
def list_entries(root: str | Path, kinds: Iterable[str] = KINDS) -> list[Entry]:
    """The entries of ``kinds`` under ``root`` (temporaries of writes in progress excluded)."""
    root = Path(root)
    out: list[Entry] = []
    for kind in kinds:
        if kind == "svd":
            for sub in _children(root / "svd"):
                if sub.is_dir() and not is_temporary(sub):
                    out.extend(_entry("svd", p) for p in _children(sub) if p.suffix == ".safetensors"
                               and not is_temporary(p))
        elif kind in ("images", "heads", "zoo"):
            out.extend(_entry(kind, p) for p in _children(root / kind) if not is_temporary(p))
        elif kind == "results":
            out.extend(_entry(kind, p) for p in _children(root)
                       if p.name.startswith("results.sqlite") or p.name == "adapt")
        else:
            raise SpectralError(f"unknown cache kind {kind!r}: one of {', '.join(KINDS)}")
    return [e for e in out if e.size >= 0]


def usage_by_kind(root: str | Path) -> dict[str, tuple[int, int]]:
    """``{kind: (entries, bytes)}`` for every kind, plus ``other`` (unknown files) and ``temporary`` (writes in
    progress or left by killed writers)."""
    root = Path(root)
    usage = {kind: (0, 0) for kind in KINDS}
    for e in list_entries(root):
        n, size = usage[e.kind]
        usage[e.kind] = (n + 1, size + e.size)
    known = {"svd", "images", "heads", "zoo", "adapt"}
    other = [p for p in _children(root)
             if p.name not in known and not p.name.startswith("results.sqlite") and not is_temporary(p)]
    usage["other"] = (len(other), sum(_size(p) for p in other))
    temps = find_temporaries(root)
    usage["temporary"] = (len(temps), sum(t.size for t in temps))
    return usage


def total_size(root: str | Path) -> int:
    """Bytes on disk under ``root`` (apparent file sizes), everything included."""
    return _size(Path(root)) if Path(root).exists() else 0


def touch(path: str | Path) -> None:
    """Mark an entry as used now (its mtime), for the LRU order. Best effort: a vanished entry is ignored."""
    try:
        os.utime(path)
    except OSError:
        pass


# -- selecting and deleting -----------------------------------------------------------------------------------------
def entries_of_pool(root: str | Path, hashes: Iterable[str]) -> list[Entry]:
    """The SVD entries whose keys are ``hashes`` (see :func:`pool_svd_keys`) that exist on disk."""
    svd = Path(root) / "svd"
    out = []
    for h in hashes:
        p = svd / h[:2] / f"{h}.safetensors"
        if p.is_file():
            out.append(_entry("svd", p))
    return [e for e in out if e.size >= 0]


def pool_svd_keys(taskset) -> list[str]:
    """Every SVD-cache key a TaskSet's merges use: each task matrix, and the factorisations derived from them
    (the SVD of the sum for Iso-C/CTS, the centred task matrices for CART)."""
    from spectral.taskset import combine_hashes

    keys: list[str] = []
    for key in taskset.matrix_keys:
        hashes = [taskset.matrix_hash(t, key) for t in range(taskset.num_tasks)]
        keys.extend(hashes)
        keys.append(combine_hashes("sum", hashes))
        keys.extend(combine_hashes(f"centered:{t}", hashes) for t in range(taskset.num_tasks))
    return keys


def lru_plan(root: str | Path, target_bytes: int) -> tuple[list[Entry], int]:
    """(evictable entries to delete, oldest first, so that the folder's size is ≤ ``target_bytes``; the size after).

    If results, the zoo and other files alone exceed the target, every evictable entry is listed and the size
    after is still above the target.
    """
    entries = sorted(list_entries(root, EVICTABLE), key=lambda e: (e.last_used, str(e.path)))
    size = total_size(root)
    plan = []
    for e in entries:
        if size <= target_bytes:
            break
        plan.append(e)
        size -= e.size
    return plan, size


def delete(entries: Iterable[Entry], *, allow_zoo: bool = False) -> int:
    """Remove entries (atomically each); returns the bytes freed. Results are refused, always."""
    freed = 0
    for e in entries:
        if e.kind not in EVICTABLE and not (allow_zoo and e.kind == "zoo"):
            raise SpectralError(f"refusing to delete {e.path}: {e.kind} entries are "
                                + ("never deleted" if e.kind == "results" else "deleted only by --kind zoo"))
        remove_atomically(e.path)
        freed += e.size
    return freed


# -- budget ---------------------------------------------------------------------------------------------------------
def budget_bytes() -> int | None:
    """``SPECTRAL_CACHE_MAX_GB`` in bytes (GB = 10⁹ bytes), or None when unset/empty."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        raise SpectralError(f"{BUDGET_ENV}={raw!r} is not a number of gigabytes (e.g. 20 or 2.5)") from None
    if gb < 0:
        raise SpectralError(f"{BUDGET_ENV}={raw!r} must be ≥ 0")
    return int(gb * 1e9)


_estimates: dict[Path, int] = {}
_estimate_lock = threading.Lock()


def note_write(root: str | Path, nbytes: int) -> None:
    """Called after a writer adds ``nbytes`` to the cache: enforces the budget when one is set.

    The folder is scanned once per process and then tracked by the sizes written, so most writes cost nothing;
    when the estimate passes the budget, a rescan evicts least recently used entries down to 90% of it (so that
    the next writes do not each trigger an eviction).
    """
    budget = budget_bytes()
    if budget is None:
        return
    root = Path(root).resolve()
    with _estimate_lock:
        estimate = _estimates.get(root)
        estimate = total_size(root) if estimate is None else estimate + nbytes
        if estimate <= budget:
            _estimates[root] = estimate
            return
        _estimates[root] = enforce_budget(root, budget)


def enforce_budget(root: str | Path, budget: int | None = None) -> int:
    """Evict least recently used evictable entries until the folder is ≤ 90% of the budget; returns its size."""
    budget = budget_bytes() if budget is None else budget
    if budget is None:
        return total_size(root)
    plan, after = lru_plan(root, int(budget * 0.9))
    if plan:
        freed = delete(plan)
        log.info("cache budget %s=%.3g: evicted %d least recently used entries (%s) from %s",
                 BUDGET_ENV, budget / 1e9, len(plan), format_size(freed), root)
    if after > budget:
        log.warning("cache %s holds %s after evicting every evictable entry, over the %s budget: results and the zoo "
                    "are never evicted", root, format_size(after), format_size(budget))
    return after


# -- sizes ----------------------------------------------------------------------------------------------------------
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """``"20G"``, ``"20GB"``, ``"1.5GiB"``, ``"500M"``, ``"0"`` → bytes (k/M/G/T are powers of 10, Ki/Mi/Gi of 2)."""
    m = _SIZE.match(text)
    if not m:
        raise SpectralError(f"size {text!r} must look like 20G, 500MB, 1.5GiB or a number of bytes")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


# -- helpers --------------------------------------------------------------------------------------------------------
def _children(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _entry(kind: str, path: Path) -> Entry:
    try:
        st = path.stat()
    except FileNotFoundError:  # removed meanwhile by another process
        return Entry(kind, path, -1, 0.0)
    if stat.S_ISDIR(st.st_mode):
        last = max([st.st_mtime] + [_mtime(c) for c in _children(path)])
        return Entry(kind, path, _size(path), last)
    return Entry(kind, path, st.st_size, st.st_mtime)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(p: Path) -> int:
    try:
        if not p.is_dir():
            return p.stat().st_size
    except FileNotFoundError:
        return 0
    from spectral.io import tree_size

    return tree_size(p)



def cache_summary(root: str | Path | None = None) -> str:
    """One line for the dashboard's sidebar: the cache's size on disk and its largest kinds."""
    from spectral.cache import default_cache_dir

    root = Path(root) if root is not None else default_cache_dir()
    usage = usage_by_kind(root)
    total = sum(size for n, size in usage.values())
    parts = [f"{kind} {format_size(size)}" for kind, (n, size) in sorted(usage.items(), key=lambda kv: -kv[1][1])
             if size and kind != "temporary"][:3]
    budget = budget_bytes()
    limit = f" of {format_size(budget)}" if budget is not None else ""
    return f"Cache: {format_size(total)}{limit} on disk" + (f" ({', '.join(parts)})" if parts else "")
