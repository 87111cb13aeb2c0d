"""Merging methods, one module each, and the registry the engine and the UI read."""
from __future__ import annotations

from spectral.errors import UnknownMethodError
from spectral.methods.base import LayerFactors, Method, Param
from spectral.methods.cart import CART
from spectral.methods.dare import DARE
from spectral.methods.elementwise import CONSENSUS, TIES
from spectral.methods.iso import ISO_C, ISO_CTS
from spectral.methods.knots import KNOTS
from spectral.methods.magmax import MAGMAX
from spectral.methods.simple import TASK_ARITHMETIC, WEIGHT_AVERAGE
from spectral.methods.svc import SVC
from spectral.methods.tsv import LOW_RANK_SUM, TSV_C, TSV_M, compress_layer

REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (WEIGHT_AVERAGE, TASK_ARITHMETIC, TIES, CONSENSUS, TSV_M, ISO_C, ISO_CTS, CART, SVC, MAGMAX, DARE,
              KNOTS, LOW_RANK_SUM, TSV_C)
}


def _load_plugins() -> None:
    from spectral.plugins import load_plugins  # late: plugins import this module

    load_plugins()


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        _load_plugins()  # a plugin named in SPECTRAL_PLUGINS since the last look
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; available: {sorted(REGISTRY)}") from None


def list_methods(kind: str | None = "merge") -> list[str]:
    """Names of the registered methods of a kind ("merge", "compress"; None for all), in display order
    (built-ins first, then plugins)."""
    _load_plugins()
    return [name for name, m in REGISTRY.items() if kind is None or m.kind == kind]


__all__ = ["REGISTRY", "LayerFactors", "Method", "Param", "compress_layer", "get_method", "list_methods"]
