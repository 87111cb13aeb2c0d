"""Atomic writes (bytes, safetensors files, folders) and checksums of tensor bytes.

Every file the library writes goes through a temporary name in the target's own folder, ``.<name>.<random>.tmp``,
and an ``os.replace`` into place, so a reader sees either the old content, no entry, or the complete new one, never
a half-written file; two processes writing the same target both succeed and the last rename wins. On any failure the
temporary is removed. A process killed mid-write leaves its temporary behind: :func:`find_temporaries` finds them
(``python -m spectral cache status`` reports them, ``cache clean --temps`` removes the stale ones).

Checksums are XXH3-128 (xxhash): non-cryptographic, ~10 GB/s, which is what detecting a corrupted cache entry needs.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
import xxhash
from safetensors.torch import save_file
from torch import Tensor


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # mkstemp creates 0600; written files are ordinary, shareable files
DIR_MODE = 0o777 & ~_umask()

# Ours: ``.<target name>.<random>.tmp``. safetensors' own ``save_file`` (≥ 0.6) also writes through a temporary in
# the target's folder, named ``.tmp<6 random characters>`` by Rust's tempfile crate; a killed writer can leave either.
_TEMP_NAME = re.compile(r"^\..+\.tmp$|^\.tmp[A-Za-z0-9]{6}$")


def temp_path(target: Path) -> Path:
    """A fresh, unique temporary path beside ``target`` (created empty as a file; the caller replaces it)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return Path(tmp)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a temporary of an atomic write (ours or safetensors')."""
    return bool(_TEMP_NAME.match(path.name))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_tensors(path: str | Path, tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` through a temporary file and an atomic rename.

    The temporary has a unique name per call (``mkstemp``), so concurrent writers of the same target never write
    into one file; the last ``os.replace`` wins and readers holding the old file keep reading its old inode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        # safetensors ≥ 0.6 writes its own 0600 temporary and renames it over ours: set the mode afterwards
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling and rename it into place when the block ends without error.

    >>> with atomic_folder(root / "entry") as tmp:   # doctest: +SKIP
    ...     (tmp / "pixels.npy").write_bytes(...)

    If ``path`` already exists (another process finished first, or an older version), the old folder is moved
    aside first (for an instant there is no entry, which readers treat as a miss) and removed after the new one is
    in place; a reader never sees a half-filled folder at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, DIR_MODE)
    try:
        yield tmp
        for _ in range(8):  # another writer may be swapping the same entry at the same moment: retry
            try:
                os.rename(tmp, path)  # atomic when path does not exist or is an empty folder
                return
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
            try:
                os.rename(path, old / "old")
            except FileNotFoundError:
                pass
            shutil.rmtree(old, ignore_errors=True)
        raise OSError(f"could not move {tmp} into place at {path}: other writers keep replacing it")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_atomically(path: str | Path) -> None:
    """Remove a file, or a folder by renaming it to a temporary name first (so it vanishes at once), then deleting."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            os.rename(path, aside / "old")
        except FileNotFoundError:  # another process removed it first
            shutil.rmtree(aside, ignore_errors=True)
            return
        shutil.rmtree(aside, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- checksums ------------------------------------------------------------------------------------------------------
def bytes_checksum(data: bytes | memoryview) -> str:
    """XXH3-128 of ``data`` as 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def tensor_checksum(tensors: Mapping[str, Tensor]) -> str:
    """XXH3-128 over the names, dtypes, shapes and raw bytes of ``tensors`` (in name order), as 32 hex digits.

    Covers exactly what a safetensors file stores for the tensors, so a changed byte anywhere in the data
    (or a header that describes different shapes) changes the checksum.
    """
    h = xxhash.xxh3_128()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


# -- temporaries left behind ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Temporary:
    path: Path
    size: int
    age_s: float


def find_temporaries(root: str | Path) -> list[Temporary]:
    """Every temporary file or folder of an atomic write under ``root`` (a live writer's included: see ``age_s``)."""
    root = Path(root)
    found: list[Temporary] = []
    if not root.is_dir():
        return found
    now = time.time()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            p = Path(dirpath) / name
            if is_temporary(p):
                dirnames.remove(name)  # do not descend into a folder being built or removed
                found.append(Temporary(p, tree_size(p), now - _mtime(p)))
        for name in filenames:
            p = Path(dirpath) / name
            if is_temporary(p):
                try:
                    st = p.stat()
                except FileNotFoundError:  # its writer just renamed it into place
                    continue
                found.append(Temporary(p, st.st_size, now - st.st_mtime))
    return found


def remove_stale_temporaries(root: str | Path, *, older_than_s: float = 3600.0) -> list[Temporary]:
    """Remove temporaries under ``root`` untouched for ``older_than_s`` seconds (their writer is gone); returns them.

    Younger ones may belong to a writer still running and are left alone.
    """
    removed = []
    for tmp in find_temporaries(root):
        if tmp.age_s >= older_than_s:
            if tmp.path.is_dir():
                shutil.rmtree(tmp.path, ignore_errors=True)
            else:
                tmp.path.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def tree_size(p: Path) -> int:
    """Bytes of every file below ``p`` (files vanishing meanwhile count 0)."""
    total = 0
    for dirpath, _, filenames in os.walk(p):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total
