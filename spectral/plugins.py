"""Your own merging method in one file: ``spectral.register_method(Method(...))`` and plugin discovery.

A plugin is a module that registers one or more :class:`spectral.Method` objects when imported. Plugins are found

- in the ``spectral.methods`` entry-point group of installed packages (an entry point may name a module, a
  ``Method``, or a list of them), and
- in ``SPECTRAL_PLUGINS``: comma-separated import paths (``my_pkg.my_method`` or ``my_pkg.my_method:METHOD``).

A plugin method is registered exactly like the built-ins, so it receives the same (cached) layer factors, gets
widgets from its declared parameters on every page, appears in ``python -m spectral methods`` and is stored in the
results database under its name. A plugin that fails to import, or declares bad parameters, is recorded in
:func:`plugin_failures` (shown on the Overview page and by the CLI) and never raises: the app keeps working.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from spectral.errors import ParameterError, SpectralError
from spectral.methods import REGISTRY
from spectral.methods.base import Method, Param

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "spectral.methods"
ENV_VAR = "SPECTRAL_PLUGINS"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAM_KINDS = ("float", "int", "choice", "bool")


class PluginError(SpectralError, ValueError):
    """A plugin method cannot be registered (bad name, parameters or functions)."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded: where it came from (module path or entry point) and why."""

    source: str
    error: str


_lock = threading.RLock()
_BUILTIN = frozenset(REGISTRY)
_plugin_sources: dict[str, str] = {}  # method name → plugin it came from
_attempted: set[str] = set()
_failures: dict[str, PluginFailure] = {}
_entry_points_scanned = False
_loading: list[str] = []  # the plugin being imported, to tag the methods it registers


def _check_param(method: str, p: Any) -> None:
    where = f"method {method!r}: parameter"
    if not isinstance(p, Param):
        raise PluginError(f"{where} {p!r} is not a spectral.Param")
    if not _NAME.match(p.name):
        raise PluginError(f"{where} name {p.name!r} must be lower_snake_case")
    if p.kind not in _PARAM_KINDS:
        raise PluginError(f"{where} {p.name!r} has kind {p.kind!r}; kinds are {list(_PARAM_KINDS)}")
    if p.kind in ("float", "int"):
        if p.low is None or p.high is None:
            raise PluginError(f"{where} {p.name!r} needs a range (low and high) for its slider")
        if not p.low < p.high:
            raise PluginError(f"{where} {p.name!r} has an empty range [{p.low}, {p.high}]")
    if p.kind == "choice" and not p.choices:
        raise PluginError(f"{where} {p.name!r} is a choice without choices")
    try:
        p.validate(p.default, method)
    except ParameterError as err:
        raise PluginError(f"{where} {p.name!r}: default {p.default!r} is invalid ({err})") from None


def validate_method(method: Any) -> None:
    """Raise :class:`PluginError` naming what is wrong with a method declaration."""
    if not isinstance(method, Method):
        raise PluginError(f"register_method takes a spectral.Method, got {type(method).__name__}")
    name = method.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"method name {name!r} must be lower_snake_case (letters, digits, _)")
    if method.kind not in ("merge", "compress"):
        raise PluginError(f"method {name!r}: kind must be 'merge' or 'compress', got {method.kind!r}")
    if (method.layer_fn is None) == (method.model_fn is None):
        raise PluginError(f"method {name!r} needs exactly one of layer_fn (per layer) or model_fn (whole model)")
    if method.non_matrix not in ("sum", "alpha_mean", "mean"):
        raise PluginError(f"method {name!r}: non_matrix must be 'sum', 'alpha_mean' or 'mean'")
    if method.alpha_form not in ("linear", "affine", "none", "nonlinear"):
        raise PluginError(f"method {name!r}: alpha_form must be linear, affine, none or nonlinear")
    names = [getattr(p, "name", None) for p in method.params]
    if len(set(names)) != len(names):
        raise PluginError(f"method {name!r} declares a parameter twice: {names}")
    for p in method.params:
        _check_param(name, p)
    fn = method.layer_fn or method.model_fn
    try:
        signature = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    accepts_any = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in signature.parameters.values())
    missing = [n for n in ["alpha", *names] if n not in signature.parameters]
    if missing and not accepts_any:
        raise PluginError(f"method {name!r}: its function does not accept the declared parameter(s) {missing}")


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Register a merging method (your own): it then works in ``merge_layer``, the engine, every page, the CLI
    and the results store. Built-in names cannot be replaced; a plugin's own name can with ``replace=True``."""
    validate_method(method)
    with _lock:
        existing = REGISTRY.get(method.name)
        if existing is not None and existing is not method:
            if method.name in _BUILTIN:
                raise PluginError(f"method name {method.name!r} is a built-in method; choose another name")
            if not replace and _plugin_sources.get(method.name) != (_loading[-1] if _loading else None):
                raise PluginError(f"a method named {method.name!r} is already registered "
                                  f"(from {_plugin_sources.get(method.name, 'code')}); pass replace=True")
        REGISTRY[method.name] = method
        _plugin_sources[method.name] = _loading[-1] if _loading else "register_method"
    log.debug("registered method %s", method.name)
    return method


def unregister_method(name: str) -> None:
    """Remove a registered plugin method (built-ins stay)."""
    with _lock:
        if name in _BUILTIN:
            raise PluginError(f"{name!r} is a built-in method")
        REGISTRY.pop(name, None)
        _plugin_sources.pop(name, None)


def plugin_source(name: str) -> str | None:
    """The plugin (import path or entry point) a method came from; None for built-ins."""
    return _plugin_sources.get(name)


def plugin_failures() -> list[PluginFailure]:
    """Plugins that failed to load in this process (after :func:`load_plugins`)."""
    load_plugins()
    with _lock:
        return list(_failures.values())


def _register_object(obj: Any, source: str) -> int:
    if isinstance(obj, Method):
        register_method(obj, replace=True)
        return 1
    if isinstance(obj, (list, tuple)):
        return sum(_register_object(o, source) for o in obj)
    if inspect.ismodule(obj):
        found = [v for v in vars(obj).values() if isinstance(v, Method) and v.name not in _BUILTIN]
        # a module that registers at import time has already done so; one that only defines Methods is registered
        return sum(_register_object(m, source) for m in found if REGISTRY.get(m.name) is not m)
    raise PluginError(f"plugin {source} provides {type(obj).__name__}, not a spectral.Method or a module")


def _load_one(source: str, load: Any) -> None:
    before = set(REGISTRY)
    _loading.append(source)
    try:
        obj = load()
        _register_object(obj, source)
    except Exception as err:  # noqa: BLE001 - a broken plugin must never break the library or the app
        for name in set(REGISTRY) - before:  # half-registered: take back what this plugin added
            REGISTRY.pop(name, None)
            _plugin_sources.pop(name, None)
        _failures[source] = PluginFailure(source, f"{type(err).__name__}: {err}")
        log.warning("plugin %s not loaded: %s: %s", source, type(err).__name__, err)
    else:
        _failures.pop(source, None)
    finally:
        _loading.pop()


def _import_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name.strip())
    return getattr(module, attr.strip()) if attr else module


def env_plugin_paths(value: str | None = None) -> list[str]:
    raw = os.environ.get(ENV_VAR, "") if value is None else value
    return [p.strip() for p in raw.split(",") if p.strip()]


def _entry_points() -> Iterable[Any]:
    from importlib.metadata import entry_points

    try:
        return entry_points(group=ENTRY_POINT_GROUP)
    except Exception as err:  # noqa: BLE001 - broken package metadata must not stop the library
        log.warning("cannot read entry points %s: %s", ENTRY_POINT_GROUP, err)
        return []


def load_plugins() -> list[str]:
    """Load every plugin not yet tried (entry points once per process, ``SPECTRAL_PLUGINS`` as it is now);
    cheap to call again. Returns the names of all plugin methods registered so far."""
    global _entry_points_scanned
    with _lock:
        if not _entry_points_scanned:
            _entry_points_scanned = True
            for ep in _entry_points():
                source = f"entry point {ep.name} ({ep.value})"
                if source not in _attempted:
                    _attempted.add(source)
                    _load_one(source, ep.load)
        for path in env_plugin_paths():
            if path not in _attempted:
                _attempted.add(path)
                _load_one(path, lambda path=path: _import_path(path))
        return sorted(_plugin_sources)


def reload_plugin(path: str) -> None:
    """Try ``path`` again (after fixing it): forget its failure and any earlier import of its module."""
    import sys

    with _lock:
        _attempted.discard(path)
        _failures.pop(path, None)
        sys.modules.pop(path.partition(":")[0].strip(), None)
    load_plugins()
