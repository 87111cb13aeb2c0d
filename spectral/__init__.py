"""spectral: SVD-based model merging — merge engine, metrics and dashboard library.

The small public API (documented in README.md)::

    import spectral
    spectral.list_methods()                                   # ['weight_average', 'task_arithmetic', ...]
    spectral.merge_layer("tsv_m", task_matrices, alpha=1.0)   # (T, m, n) → (m, n) delta to add to the base
    spectral.compress_layer(task_matrix, k_frac=0.1)          # TSV-C reconstruction
    spectral.sti(task_matrices), spectral.sar(src, trg, merged), spectral.effective_rank(matrix)

Model-level: :class:`TaskSet` (base + fine-tuned state dicts), :class:`Engine` (cached SVDs, whole-model merges).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from spectral.engine import Engine
from spectral.errors import SpectralError
from spectral.methods import compress_layer, get_method, list_methods
from spectral.methods.base import LayerFactors, Method, Param
from spectral.taskset import TaskSet

__version__ = "0.1.0"


def merge_layer(method: str, task_matrices: Tensor, *, alpha: float = 1.0, **params: Any) -> Tensor:
    """Merge ONE layer: ``task_matrices`` (T, m, n) stacked Δ_t → the (m, n) delta to add to the base layer,
    alpha already applied. Whole-model methods (TIES, Consensus) need every parameter: use :class:`Engine`."""
    m = get_method(method)
    if m.layer_fn is None:
        raise ValueError(f"{method!r} works on the whole model (or one task), not one layer: use spectral.Engine")
    layer = LayerFactors(task_matrices if task_matrices.is_floating_point() else task_matrices.float())
    resolved = m.resolve_params({**params, "alpha": alpha} if "alpha" in m.param_names else params, layer.num_tasks)
    resolved.pop("alpha", None)
    return m.layer_fn(layer, alpha=alpha, **resolved)


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Register your own merging method (see docs/plugins.md and :mod:`spectral.plugins`)."""
    from spectral.plugins import register_method as register

    return register(method, replace=replace)


def load_plugins() -> list[str]:
    """Load plugins from the ``spectral.methods`` entry points and ``SPECTRAL_PLUGINS`` (failures are recorded, never
    raised: :func:`spectral.plugins.plugin_failures`)."""
    from spectral.plugins import load_plugins as load

    return load()


def __getattr__(name: str) -> Any:
    # Metrics are imported on first use so that `import spectral` stays light for the CLI.
    if name in {"sti", "sar", "effective_rank"}:
        from spectral import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'spectral' has no attribute {name!r}")


__all__ = [
    "Engine", "LayerFactors", "Method", "Param", "SpectralError", "TaskSet", "compress_layer", "effective_rank",
    "get_method", "list_methods", "load_plugins", "merge_layer", "register_method", "sar", "sti",
]
