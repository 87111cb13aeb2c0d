"""A restricted unpickler for the papers' pickled checkpoints.

Even after the user trusts a pickle (``trust_pickle=True``), spectral does not hand it the whole interpreter: the
``find_class`` below resolves only

* the reference classes (``src.modeling.ImageEncoder``, ``src.models.modeling.ClassificationHead``, ...), which
  become the shims of :mod:`spectral.checkpoints.shims`;
* any open_clip / timm module class, old or new name (``open_clip.model.VisualTransformer``, ...), which becomes
  :class:`~spectral.checkpoints.shims.LegacyModule` (weights only);
* torchvision transforms, PIL constants and open_clip transform helpers, which become placeholders;
* the pieces of torch needed to rebuild tensors, parameters and ``torch.nn`` modules, and a few harmless
  builtins and containers.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
:class:`~spectral.checkpoints.errors.UnsafePickleError` naming the global.
"""
from __future__ import annotations

import builtins
import collections
import copyreg
import pickle
import types
from typing import Any

import torch
from torch import nn

from spectral.checkpoints import shims
from spectral.checkpoints.errors import UnsafePickleError

__all__ = ["RestrictedUnpickler", "pickle_module", "resolve_global"]

_SAFE_BUILTINS = {
    "set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "int", "float", "bool", "str",
    "tuple", "list", "dict", "object", "NoneType",
}
_SAFE_TORCH_UTILS = {
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_wrapper_subclass", "_rebuild_meta_tensor_no_storage",
}
# packages whose classes/functions are replaced by shims or placeholders (never imported)
_SHIMMED_PACKAGES = ("open_clip", "timm", "torchvision", "PIL", "clip", "src", "modeling", "models")


def _is_nn_module_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def resolve_global(module: str, name: str) -> Any:
    """What the restricted unpickler returns for the global ``module.name`` (raises UnsafePickleError)."""
    # 1. the reference code's classes
    for ref_module, classes in shims.REFERENCE_CLASSES.items():
        if module == ref_module or module.endswith("." + ref_module):
            if name in classes:
                return classes[name]
    # 2. containers and harmless builtins
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
        return getattr(builtins, name, type(None))
    if module == "copyreg" and name == "_reconstructor":
        return _reconstructor
    # 3. torch: tensor rebuilding, dtypes/layouts/devices, torch.nn classes
    if module == "torch._utils" and name in _SAFE_TORCH_UTILS:
        return getattr(torch._utils, name)
    if module == "torch._tensor" and name == "_rebuild_from_type_v2":
        return torch._tensor._rebuild_from_type_v2
    if module == "torch.serialization" and name == "_get_layout":
        return torch.serialization._get_layout
    if module == "torch":
        obj = getattr(torch, name, None)
        if isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)) or obj in (torch.Size, torch.device):
            return obj
        if obj is torch.Tensor:
            return obj
    if module == "torch.nn.parameter" and name in ("Parameter", "Buffer"):
        return getattr(torch.nn.parameter, name)
    if module.startswith("torch.nn.modules.") or module == "torch.nn":
        try:
            obj = getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):
            obj = None
        if _is_nn_module_class(obj):
            return obj
        if obj is None:  # a torch.nn class of an older release that no longer exists
            return type(name, (shims.LegacyModule,), {"__module__": "spectral.checkpoints.shims.legacy"})
    # 4. open_clip / timm / torchvision / PIL / the reference code: shims and placeholders, never imported
    top = module.split(".", 1)[0]
    if top in _SHIMMED_PACKAGES:
        return _shim_for(module, name)
    raise UnsafePickleError(
        f"the pickle references the global {module}.{name}, which spectral does not load (only tensors, "
        "torch.nn modules, open_clip models and the task_vectors/tall_masks classes are allowed)"
    )


_SHIM_CACHE: dict[tuple[str, str], Any] = {}


def _shim_for(module: str, name: str) -> Any:
    key = (module, name)
    if key not in _SHIM_CACHE:
        lowered = name.lower()
        if name[:1].islower() or name.startswith("_"):
            # functions (open_clip.transform._convert_to_rgb) and module-level constants
            _SHIM_CACHE[key] = shims.placeholder_function
        elif module.startswith(("torchvision", "PIL")) or module == "open_clip.transform" or "interpolation" in lowered:
            _SHIM_CACHE[key] = type(name, (shims.Placeholder,), {"__module__": "spectral.checkpoints.shims.legacy"})
        else:
            # open_clip / timm classes: modules (CLIP, VisualTransformer, ResidualAttentionBlock, LayerNorm, ...)
            _SHIM_CACHE[key] = type(name, (shims.LegacyModule,), {"__module__": "spectral.checkpoints.shims.legacy"})
    return _SHIM_CACHE[key]


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` restricted to ``base is object`` (what protocol-0/1 pickles of plain classes
    use); any other base could run an arbitrary ``__init__``."""
    if base is not object:
        raise UnsafePickleError(f"the pickle reconstructs {cls!r} through base {base!r}; only object is allowed")
    return copyreg._reconstructor(cls, base, state)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` goes through :func:`resolve_global`."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        return resolve_global(module, name)


def _load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


def _loads(data: bytes, **kwargs: Any) -> Any:
    import io

    return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


#: pass as ``torch.load(..., pickle_module=pickle_module, weights_only=False)``
pickle_module = types.ModuleType("spectral_restricted_pickle")
pickle_module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
pickle_module.load = _load  # type: ignore[attr-defined]
pickle_module.loads = _loads  # type: ignore[attr-defined]
pickle_module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
