"""What figures need from an open model pool: a plain interface, so that :mod:`spectral.figures` builds headless
from data and never imports the dashboard's session glue (``spectral.app_state``).

Any object with these members is a :class:`FigureSource`; the dashboard's ``Workspace`` is one (the pages and the
CLI pass it in). Tests may pass their own.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
#: ``progress(i, n, text)``: step i of n done, with a short description
Progress = Callable[[int, int, str], None]


@runtime_checkable
class FigureSource(Protocol):
    """An open pool: its engine (task matrices, merges, SVD cache), task names, memo and accuracies."""

    #: the pool spec (``zoo-8``, a pool YAML, a checkpoint folder): names downloads and settings documents
    spec: str
    #: :class:`spectral.engine.Engine` once opened
    engine: Any

    @property
    def task_names(self) -> list[str]: ...

    def open(self, progress: Progress | None = None) -> Any: ...

    def cached(self, key: Hashable, fn: Callable[[Progress], T], progress: Progress | None = None) -> T:
        """``fn(progress)``'s result, memoised under ``key``."""
        ...

    def accuracies(self, model: str, method_params: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> dict[str, float]:
        """Accuracy (%) per task of ``zeroshot``, ``finetuned`` or a merging method with its parameters."""
        ...

    def accuracy_result(self, model: str, method_params: Mapping[str, Any] | None = None,
                        progress: Progress | None = None, *, subsample: int | None = None) -> Any:
        """The stored :class:`spectral.eval.results.Result` (accuracies, images per task, whether it is a
        subsample estimate) of ``zeroshot``, ``finetuned`` or a merging method with its parameters."""
        ...

    def compressed_accuracy(self, task: str, k_frac: float) -> float:
        """Accuracy (%) of one task's TSV-C compression at ``k_frac`` on that task."""
        ...


#: opens a pool spec on a device: what ``regenerate`` uses when no source is passed (the CLI gives the app's)
SourceOpener = Callable[[str, str], FigureSource]


def freeze(value: Any) -> Hashable:
    """A hashable, order-independent form of nested settings (dicts, lists, scalars) for memo keys."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, float):
        return round(value, 12)
    return value
