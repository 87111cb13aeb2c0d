"""Per-task data status of a pool: whether each task's data was found, and how many test images it has.

For the dashboard's Overview and for scripts. Works on any :class:`~spectral.pool.ModelPool` (duck-typed: only
``task_names`` and ``dataset(task, split)`` are used, plus ``data_location(task)`` and ``task_spec(task)`` where a
checkpoint pool has them); opening a split reads its file lists and labels, never its images.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["TaskDataStatus", "task_data_status"]


@dataclass(frozen=True)
class TaskDataStatus:
    """One task's data: ``found`` and ``images`` (the split's size), the benchmark it is read as, the folder it
    was read from (or looked up in), and the layout it was read as (or why nothing was read)."""

    task: str
    found: bool
    images: int | None
    dataset: str | None
    folder: str | None
    detail: str

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def task_data_status(pool: Any, split: str = "test") -> list[TaskDataStatus]:
    """The data status of every task of ``pool`` on ``split`` (errors are reported per task, never raised)."""
    from spectral.errors import SpectralError

    rows = []
    for task in pool.task_names:
        dataset = folder = None
        spec = getattr(pool, "task_spec", None)
        if callable(spec):
            try:
                s = spec(task)
                dataset = getattr(s, "benchmark", None) or getattr(s, "dataset", None)
            except SpectralError:
                pass
        locate = getattr(pool, "data_location", None)
        if callable(locate):
            path, _ = locate(task)
            folder = str(path) if path is not None else None
        try:
            ds = pool.dataset(task, split)
            n = len(ds)
            layout = getattr(ds, "layout", None)
            rows.append(TaskDataStatus(task, True, n, dataset, getattr(ds, "root", None) or folder,
                                       layout or getattr(ds, "description", "") or type(ds).__name__))
        except (SpectralError, OSError) as exc:
            log.info("task %s: no %s data (%s)", task, split, exc)
            rows.append(TaskDataStatus(task, False, None, dataset, folder, str(exc)))
    return rows
