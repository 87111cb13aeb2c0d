"""Pool roots: the folders a served dashboard may open files in (``$SPECTRAL_POOL_ROOTS``).

Anyone who reaches the dashboard's port can type a path into the pool box or put one in a link (``pool_path`` is a
URL parameter). Without a bound they could make the server read any file it can read, and error messages that quote
a file's first bytes would show them its content. The dashboard therefore opens a path only when it lies inside one
of the roots, named without ``..`` and not leading out through a symbolic link; every file a pool names (its
checkpoints, heads, data folders) is checked the same way before anything reads it. The CLI is not bounded: its
user owns the shell.

:func:`bounded_reads` additionally marks the files whose leading bytes error messages may quote
(:func:`may_show_bytes`), for code running inside the bound (the dashboard's pool opening).

This module imports nothing above :mod:`spectral.errors`: the checkpoint loaders consult it.
"""
from __future__ import annotations

import contextvars
import dataclasses
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from spectral.errors import SpectralError

#: the environment variable naming the roots (separated by ``os.pathsep``, ``:`` on Linux)
POOL_ROOTS_ENV = "SPECTRAL_POOL_ROOTS"


class OutsidePoolRootsError(SpectralError, PermissionError):
    """A path the dashboard was asked to open lies outside ``$SPECTRAL_POOL_ROOTS`` (or reaches out of them)."""


def pool_roots(environ: Mapping[str, str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
               cwd: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The roots, each resolved (symbolic links followed): ``$SPECTRAL_POOL_ROOTS`` (``os.pathsep``-separated),
    else the current directory and ``cache_dir`` (the cache: the demo zoo and adaptation checkpoints live there)."""
    env = os.environ if environ is None else environ
    raw = env.get(POOL_ROOTS_ENV, "").strip()
    if raw:
        entries: list[str] = [e.strip() for e in raw.split(os.pathsep) if e.strip()]
    else:
        entries = [os.fspath(cwd) if cwd is not None else os.getcwd()]
        if cache_dir is not None:
            entries.append(os.fspath(cache_dir))
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    resolved = (Path(os.path.realpath(os.path.join(base, os.path.expanduser(e)))) for e in entries)
    return tuple(dict.fromkeys(resolved))


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _describe(roots: Sequence[Path]) -> str:
    return os.pathsep.join(str(r) for r in roots) or "(none)"


def check_path(path: str | os.PathLike[str], roots: Sequence[Path], *, what: str = "path",
               cwd: str | os.PathLike[str] | None = None) -> Path:
    """``path`` resolved (symbolic links followed) when it lies inside one of ``roots``; else
    :class:`OutsidePoolRootsError` naming the setting. Refused: a path outside every root, a path written with a
    ``..`` component (even one that would land inside), and a path inside a root that a symbolic link leads out of.
    Nothing is read from the file, and the message says nothing about its content or whether it exists."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text)
    setting = f"{POOL_ROOTS_ENV} ({_describe(roots)})"
    if ".." in Path(expanded).parts:
        raise OutsidePoolRootsError(
            f"{what} {text!r} refused: it goes through '..'; the dashboard opens only paths inside {setting}, "
            "written without '..'. Add the folder to that setting when you start the server to open it")
    absolute = Path(os.path.abspath(os.path.join(os.fspath(cwd) if cwd is not None else os.getcwd(), expanded)))
    real = Path(os.path.realpath(absolute))
    if _inside(real, roots):
        return real
    if _inside(absolute, roots) or absolute != real:
        why = "a symbolic link on it leads outside the folders the dashboard may open"
    else:
        why = "it is outside the folders the dashboard may open"
    raise OutsidePoolRootsError(
        f"{what} {text!r} refused: {why}, {setting}. Start the server with that setting naming the folder "
        "(the command line, `python -m spectral`, is not bounded)")


def paths_in(obj: Any) -> Iterator[tuple[str, Path]]:
    """Every ``Path`` held by a (nested) dataclass, list, tuple or dict: ``(where, path)`` pairs. Used on a pool's
    spec (:class:`~spectral.checkpoints.pool.PoolSpec` or any other dataclass a pool keeps as ``spec``)."""
    seen: set[int] = set()

    def walk(value: Any, where: str) -> Iterator[tuple[str, Path]]:
        if isinstance(value, Path):
            yield where, value
        elif id(value) in seen:
            return
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            seen.add(id(value))
            name = getattr(value, "name", None)
            for f in dataclasses.fields(value):
                label = f"{where}{'[' + str(name) + ']' if isinstance(name, str) and where else ''}.{f.name}"
                yield from walk(getattr(value, f.name), label.lstrip("."))
        elif isinstance(value, (list, tuple)):
            seen.add(id(value))
            for i, item in enumerate(value):
                yield from walk(item, f"{where}[{i}]" if not dataclasses.is_dataclass(item) else where)
        elif isinstance(value, dict):
            seen.add(id(value))
            for key, item in value.items():
                yield from walk(item, f"{where}.{key}")

    yield from walk(obj, "")


def check_paths(named: Iterable[tuple[str, Path]], roots: Sequence[Path], *, what: str = "pool") -> None:
    """:func:`check_path` for every ``(where, path)`` pair (a pool's checkpoints, heads, data folders)."""
    for where, path in named:
        check_path(path, roots, what=f"{what} file {where}" if where else what)


# -- which files an error message may quote ---------------------------------------------------------------------
_BOUND: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar("spectral_read_roots", default=None)


@contextmanager
def bounded_reads(roots: Sequence[Path] | None) -> Iterator[None]:
    """Within this block (this thread, and threads started with a copy of its context), error messages quote a
    file's bytes only when :func:`may_show_bytes` says the file lies inside ``roots``. ``None``: no bound."""
    token = _BOUND.set(tuple(roots) if roots is not None else None)
    try:
        yield
    finally:
        _BOUND.reset(token)


def may_show_bytes(path: str | os.PathLike[str]) -> bool:
    """Whether an error message may quote the leading bytes of ``path``: always outside :func:`bounded_reads`
    (the CLI), else only for a file inside the roots."""
    roots = _BOUND.get()
    if roots is None:
        return True
    try:
        check_path(path, roots)
    except OutsidePoolRootsError:
        return False
    return True
