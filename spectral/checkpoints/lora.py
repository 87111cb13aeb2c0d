"""LoRA adapters (PEFT folders) as tasks: reading, key mapping, validation, and the pool of a base and adapters.

A PEFT LoRA folder holds ``adapter_config.json`` (``r``, ``lora_alpha``, ``target_modules``, ``use_rslora``,
optionally ``rank_pattern`` / ``alpha_pattern``) and ``adapter_model.safetensors`` with, per adapted module,
``base_model.model.<module>.lora_A.weight`` (r × in) and ``…lora_B.weight`` (out × r); embedding layers have
``lora_embedding_A`` (r × num_embeddings) and ``lora_embedding_B`` (dim × r). The update of ``<module>.weight`` is
ΔW = s·B·A (embeddings: (s·B·A)ᵀ), s = alpha / r, or alpha / √r with ``use_rslora`` — as PEFT's
``merge_and_unload`` adds it.

**Key mapping.** ``<module>`` is the module path inside the model PEFT wrapped: ``model.layers.0.self_attn.q_proj``
for a ``LlamaForCausalLM``, ``transformer.resblocks.0.mlp.c_fc`` for an open_clip image tower, ``visual.…`` for a
whole CLIP. Its weight is the base's canonical key ``k`` that equals ``<module>.weight``, or of which
``<module>.weight`` is a dotted suffix (the base's keys carry a prefix, e.g. ``visual.``), or which is a dotted
suffix of ``<module>.weight`` (the base's keys have the model class's prefix stripped, e.g. the Llama body's
``layers.0…``). Exactly one base key must match. GPT-2's Conv1D weights need nothing special: PEFT's A is r × in
and B out × r there too, and canonical keys are out × in.

**Hugging Face CLIP image towers.** An adapter trained on a ``CLIPVisionModel`` or a ``CLIPModel`` names modules
``vision_model.encoder.layers.N.…`` (any prefix before ``vision_model.``; transformers ≥ 5 builds a
``CLIPVisionModel`` without that level, so its paths are ``encoder.layers.N.…``), while the CLIP pools hold the base in
open_clip's canonical keys (:mod:`spectral.checkpoints.keymap`). ``self_attn.out_proj``, ``mlp.fc1`` and
``mlp.fc2`` map through keymap's own table to ``attn.out_proj`` / ``mlp.c_fc`` / ``mlp.c_proj`` (same out × in
orientation); ``visual_projection`` (embed × width) to ``visual.proj`` (width × embed), so ΔW is transposed there.
q, k and v are one fused open_clip weight, ``attn.in_proj_weight`` (3d × d, rows q then k then v), so the
adapted projections of a layer make ONE low-rank update of it:

    ΔW_in = [s_q B_q A_q; s_k B_k A_k; s_v B_v A_v] = blockdiag(s_q B_q, s_k B_k, s_v B_v) · vstack(A_q, A_k, A_v),

a factor pair of rank r_q + r_k + r_v (a projection the adapter leaves alone has no block: its rows are zero), so
the factor SVD still applies and no dense 3d × d matrix is formed. Modules of a ``CLIPModel``'s text tower
(``text_model.…``, ``text_projection``) are not part of an image pool's body: they are skipped with a warning
(:attr:`LoRAAdapter.skipped`) — the pool's heads come from the base's text tower.

Files are memory-mapped (safetensors); factors are read when first used. Every error names the file, the key and
the shapes: :class:`AdapterConfigError`, :class:`AdapterKeyError`, :class:`AdapterShapeError` (CLI exit status 2).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from spectral.checkpoints.keymap import _HF_LAYER, _HF_SIMPLE
from spectral.errors import CheckpointError, MissingKeyError, ShapeMismatchError
from spectral.lora import LowRankDelta, lora_scale
from spectral.pool import ImagePool, ModelPool

log = logging.getLogger(__name__)

__all__ = ["AdapterConfigError", "AdapterError", "AdapterKeyError", "AdapterShapeError", "LoRAAdapter", "LoRAPool",
           "LoRAState", "is_adapter_folder", "lora_pool", "read_adapter"]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

_FACTOR = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|"
                     r"lora_embedding_B)(?:\.[^.]+)?(?:\.weight)?$")


# Hugging Face CLIP image-tower module paths (module docstring); the layer names come from keymap's _HF_LAYER
_HF_VISION_LAYER = re.compile(r"^(?:(?:.*\.)?vision_model\.)?encoder\.layers\.(?P<layer>\d+)\.(?P<name>.+)$")
_HF_QKV = re.compile(r"^self_attn\.(?P<part>[qkv])_proj$")
_HF_VISION = re.compile(r"^(?:(?:.*\.)?vision_model\.)?(?P<rest>embeddings\..+)$")
_HF_VISUAL_PROJECTION = re.compile(r"^(?:.*\.)?visual_projection$")
_HF_TEXT = re.compile(r"^(?:.*\.)?(?:text_model\..+|text_projection)$")


def _hf_clip_target(module: str) -> tuple[str, str | None, bool] | None:
    """Where an HF CLIP vision module's weight lives in the canonical keys: (canonical key, q/k/v part of the fused
    ``in_proj_weight`` or None, ΔW of a Linear transposed); None when ``module`` is no HF CLIP image-tower path.
    The names come from keymap's tables (``_HF_LAYER``, ``_HF_SIMPLE``), which canonicalise the base itself."""
    if _HF_VISUAL_PROJECTION.match(module):
        return "visual.proj", None, True
    top = _HF_VISION.match(module)
    if top is not None and top.group("rest") + ".weight" in _HF_SIMPLE:  # e.g. the position embedding (nn.Embedding)
        return "visual." + _HF_SIMPLE[top.group("rest") + ".weight"], None, False
    m = _HF_VISION_LAYER.match(module)
    if m is None:
        return None
    layer, name = m.group("layer"), m.group("name")
    block = f"visual.transformer.resblocks.{layer}."
    canonical = _HF_LAYER.get(name + ".weight")
    if canonical is not None:
        return block + canonical, None, False
    q = _HF_QKV.match(name)
    if q is not None:
        return block + "attn.in_proj_weight", q.group("part"), False
    return None


class AdapterError(CheckpointError):
    """A LoRA adapter folder cannot be used."""


class AdapterConfigError(AdapterError):
    """``adapter_config.json`` is missing, unreadable, or asks for something that is not a plain LoRA update."""


class AdapterKeyError(AdapterError, MissingKeyError):
    """An adapter key names no module of the base, or a factor has no partner."""


class AdapterShapeError(AdapterError, ShapeMismatchError):
    """An adapter factor's shape does not fit the base's weight or its partner factor."""


def is_adapter_folder(path: str | os.PathLike[str]) -> bool:
    """A folder with ``adapter_config.json``."""
    p = Path(os.path.expanduser(str(path)))
    return p.is_dir() and (p / CONFIG_FILE).is_file()


def _pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's ``rank_pattern`` / ``alpha_pattern`` lookup (``get_pattern_key``: the first pattern matching a dotted
    suffix of the module path)."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


@dataclass
class _Part:
    """One q/k/v projection's factors inside a fused ``in_proj_weight`` update (rows ``row`` … ``row + d``)."""

    module: str  # PEFT module path
    a_key: str
    b_key: str
    scale: float
    row: int


@dataclass
class _Module:
    module: str  # PEFT module path (for a fused q/k/v update: ``….self_attn.{q,v}_proj``)
    key: str  # the base's canonical weight key
    a_key: str
    b_key: str
    transposed: bool  # ΔW = (s·B·A)ᵀ: embeddings, and HF CLIP's visual_projection
    scale: float
    parts: tuple[_Part, ...] = ()  # a fused HF CLIP q/k/v update: its projections (a_key, b_key, scale unused)


class LoRAAdapter:
    """One PEFT LoRA folder, mapped onto a base's canonical keys (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], base_shapes: Mapping[str, tuple[int, ...]]) -> None:
        from spectral.checkpoints.formats import read_safetensors

        self.path = Path(os.path.expanduser(str(path)))
        config_file = self.path / CONFIG_FILE
        if not config_file.is_file():
            raise AdapterConfigError(f"{self.path}: no {CONFIG_FILE}, so it is not a PEFT adapter folder")
        try:
            self.config: dict[str, Any] = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise AdapterConfigError(f"{config_file}: not valid JSON ({exc})") from None
        cfg = self.config
        peft_type = str(cfg.get("peft_type", "LORA")).upper()
        if peft_type != "LORA":
            raise AdapterConfigError(f"{config_file}: peft_type {peft_type!r} is not LORA")
        if cfg.get("use_dora"):
            raise AdapterConfigError(f"{config_file}: use_dora is true; DoRA rescales the weight's columns, so its "
                                     "update is not the low-rank B·A this loader reads")
        for field_name in ("r", "lora_alpha"):
            value = cfg.get(field_name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise AdapterConfigError(f"{config_file}: {field_name!r} must be a positive number, got {value!r}")
        self.use_rslora = bool(cfg.get("use_rslora", False))
        self.weights_file = self.path / WEIGHTS_FILE
        if not self.weights_file.is_file():
            other = " (adapter_model.bin is a pickle: convert it to safetensors)" if (
                self.path / "adapter_model.bin").is_file() else ""
            raise AdapterConfigError(f"{self.path}: no {WEIGHTS_FILE}{other}")
        try:  # memory-mapped, and tracked so that long merges hand the pages they read back (spectral.heap)
            self._tensors = read_safetensors(self.weights_file)
        except OSError as exc:
            raise AdapterConfigError(f"{self.weights_file}: unreadable safetensors file ({exc})") from None
        stored = list(self._tensors)
        self._shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
        self.modules: dict[str, _Module] = {}
        self._fused_scales: dict[tuple[str, str], float] = {}
        self._map(stored, base_shapes)
        self._check_targets(base_shapes)

    # -- mapping and validation --------------------------------------------------------------------------------
    def _map(self, stored: list[str], base_shapes: Mapping[str, tuple[int, ...]]) -> None:
        cfg = self.config
        pairs: dict[str, dict[str, str]] = {}
        for key in stored:
            match = _FACTOR.match(key)
            if match is None:
                raise AdapterKeyError(
                    f"{self.weights_file}: key {key!r} is not a LoRA factor (lora_A / lora_B / lora_embedding_A / "
                    "lora_embedding_B); modules_to_save and other full weights in an adapter are not supported")
            pairs.setdefault(match.group("module"), {})[match.group("kind")] = key
        base_keys = list(base_shapes)
        self.skipped: list[str] = []  # HF CLIPModel text-tower modules (module docstring)
        self._hf_modules: list[str] = []  # PEFT module paths read as HF CLIP paths
        hf_clip = (any(k.startswith("visual.") for k in base_keys)  # a CLIP pool's canonical image tower
                   and any(_hf_clip_target(m) is not None or _HF_TEXT.match(m) for m in pairs)
                   and not any(m + ".weight" in base_shapes for m in pairs))
        fused: dict[str, dict[str, tuple[str, str, str, tuple[int, ...], tuple[int, ...]]]] = {}
        for module, found in pairs.items():
            embedding = "lora_embedding_A" in found or "lora_embedding_B" in found
            a_kind, b_kind = ("lora_embedding_A", "lora_embedding_B") if embedding else ("lora_A", "lora_B")
            for kind in (a_kind, b_kind):
                if kind not in found:
                    other = next(iter(found.values()))
                    raise AdapterKeyError(f"{self.weights_file}: {other!r} has no partner {kind} for module {module!r}")
            a_shape, b_shape = self._shapes[found[a_kind]], self._shapes[found[b_kind]]
            if hf_clip and _HF_TEXT.match(module):
                self.skipped.append(module)
                self._hf_modules.append(module)
                continue
            target = _hf_clip_target(module) if hf_clip else None
            if target is not None:
                canonical, part, transposed = target
                self._hf_modules.append(module)
                transposed = transposed or embedding
                key = self._base_key(canonical, base_keys, module=module, suffix="")
            else:
                part, transposed = None, embedding
                key = self._base_key(module, base_keys)
            where = f"{self.weights_file}: module {module!r} (base key {key!r})"
            if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
                raise AdapterShapeError(f"{where}: {a_kind} {a_shape} and {b_kind} {b_shape} are not r × in and "
                                        "out × r factors of one rank r")
            r = int(a_shape[0])
            base_shape = tuple(base_shapes[key])
            rank_cfg = _pattern_value(cfg.get("rank_pattern") or {}, module, cfg["r"])
            if int(rank_cfg) != r:
                raise AdapterShapeError(f"{where}: the factors have rank {r}, {CONFIG_FILE} says r = {rank_cfg}")
            alpha = _pattern_value(cfg.get("alpha_pattern") or {}, module, cfg["lora_alpha"])
            scale = lora_scale(float(alpha), r, use_rslora=self.use_rslora)
            if part is not None:  # one block of the fused in_proj_weight: checked when the layer is complete
                fused.setdefault(key, {})[part] = (module, found[a_kind], found[b_kind], a_shape, b_shape)
                self._fused_scales[(key, part)] = scale
                continue
            # the weight's (out, in): Linear's own; an embedding's weight is (num_embeddings, dim) = (A's in, B's out)
            expected = (a_shape[1], b_shape[0]) if transposed else (b_shape[0], a_shape[1])
            if len(base_shape) != 2 or base_shape != expected:
                what = " (transposed, as open_clip stores it)" if transposed and not embedding else ""
                raise AdapterShapeError(f"{where}: {a_kind} {a_shape} and {b_kind} {b_shape} give an update of shape "
                                        f"{expected}{what}, the base's weight is {base_shape}")
            if key in {m.key for m in self.modules.values()}:
                raise AdapterKeyError(f"{where}: two adapted modules map to the same base key")
            self.modules[module] = _Module(module, key, found[a_kind], found[b_kind], transposed, scale)
        for key, parts in fused.items():
            self._map_fused(key, parts, tuple(base_shapes[key]))
        if hf_clip and not self.modules:
            raise AdapterKeyError(f"{self.weights_file}: the adapter adapts no module of the CLIP image tower (only "
                                  f"text-tower modules such as {self.skipped[:3]}), so it is no task of an image pool")
        if self.skipped:
            log.warning("%s: %d text-tower module(s) of a CLIPModel adapter skipped (an image pool's body is the image "
                        "tower): %s", self.weights_file, len(self.skipped), self.skipped[:3])

    def _map_fused(self, key: str, parts: Mapping[str, tuple[str, str, str, tuple[int, ...], tuple[int, ...]]],
                   base_shape: tuple[int, ...]) -> None:
        """The q/k/v blocks of one fused ``in_proj_weight`` (3d × d): each B is d × r, each A r × d."""
        modules = [parts[p][0] for p in "qkv" if p in parts]
        if len(base_shape) != 2 or base_shape[0] % 3 != 0:
            raise AdapterShapeError(f"{self.weights_file}: modules {modules} map to base key {key!r} of shape "
                                    f"{base_shape}, which is not a fused q/k/v weight (3d × d)")
        d = base_shape[0] // 3
        out: list[_Part] = []
        for row, p in enumerate("qkv"):
            if p not in parts:
                continue
            module, a_key, b_key, a_shape, b_shape = parts[p]
            if (b_shape[0], a_shape[1]) != (d, base_shape[1]):
                raise AdapterShapeError(
                    f"{self.weights_file}: module {module!r} (base key {key!r}, rows {row * d}–{(row + 1) * d}): "
                    f"lora_A {a_shape} and lora_B {b_shape} give an update of shape {(b_shape[0], a_shape[1])}, "
                    f"the {p} block of the base's fused weight {base_shape} is {(d, base_shape[1])}")
            out.append(_Part(module, a_key, b_key, self._fused_scales[(key, p)], row * d))
        if key in {m.key for m in self.modules.values()}:
            raise AdapterKeyError(f"{self.weights_file}: modules {modules} (base key {key!r}): two adapted modules map "
                                  "to the same base key")
        prefix = modules[0].rsplit(".", 1)[0]
        name = f"{prefix}.{{{','.join(p for p in 'qkv' if p in parts)}}}_proj"
        self.modules[name] = _Module(name, key, "", "", False, 1.0, tuple(out))

    def _base_key(self, path: str, base_keys: list[str], *, module: str | None = None, suffix: str = ".weight") -> str:
        """The one base key of ``path + suffix`` (``module``: the PEFT path when ``path`` is its canonical name)."""
        weight = path + suffix
        if weight in base_keys:
            return weight
        matches = [k for k in base_keys if k.endswith("." + weight) or weight.endswith("." + k)]
        if len(matches) != 1:
            what = "no" if not matches else f"{len(matches)} ({', '.join(matches[:3])})"
            via = f" (a Hugging Face CLIP path, open_clip's {weight!r})" if module is not None else ""
            raise AdapterKeyError(f"{self.weights_file}: module {module or path!r}{via} matches {what} weight of the "
                                  f"base (expected one key ending in {weight!r} or of which it ends)")
        return matches[0]

    def _check_targets(self, base_shapes: Mapping[str, tuple[int, ...]]) -> None:
        targets = self.config.get("target_modules")
        if not isinstance(targets, list):  # a regex string or "all-linear": the factors themselves were checked
            return
        names = {part for k in base_shapes for part in k.split(".")}
        names |= {".".join(k.split(".")[i:-1]) for k in base_shapes for i in range(len(k.split(".")) - 1)}
        for module in self._hf_modules:  # HF CLIP paths: the module names of the model PEFT wrapped
            parts = module.split(".")
            names |= set(parts) | {".".join(parts[i:]) for i in range(len(parts))}
        missing = [t for t in targets if t not in names]
        if missing:
            raise AdapterKeyError(f"{self.path / CONFIG_FILE}: target module(s) {missing} are not modules of the base "
                                  f"(e.g. its keys {list(base_shapes)[:3]})")

    # -- reading -----------------------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Base keys this adapter updates."""
        return [m.key for m in self.modules.values()]

    def delta(self, module: str) -> LowRankDelta:
        m = self.modules[module]
        if m.parts:
            return self._fused_delta(m)
        A = self._tensors[m.a_key]
        B = self._tensors[m.b_key]
        if m.transposed:  # ΔW = (s·B·A)ᵀ = s·Aᵀ·Bᵀ
            return LowRankDelta(A.mT, B.mT, m.scale)
        return LowRankDelta(B, A, m.scale)

    def _fused_delta(self, m: _Module) -> LowRankDelta:
        """ΔW_in = blockdiag(s_q B_q, s_k B_k, s_v B_v) · vstack(A_q, A_k, A_v) over the adapted projections (module
        docstring): rank Σ r_p, the scales folded into B (in at least float32), so the pair's scale is 1."""
        Bs = [self._tensors[p.b_key] for p in m.parts]
        As = [self._tensors[p.a_key] for p in m.parts]
        dtype = torch.promote_types(torch.promote_types(Bs[0].dtype, As[0].dtype), torch.float32)
        d = int(Bs[0].shape[0])
        rank = sum(int(A.shape[0]) for A in As)
        B = torch.zeros(3 * d, rank, dtype=dtype)
        col = 0
        for p, Bp in zip(m.parts, Bs):
            r = int(Bp.shape[1])
            B[p.row:p.row + d, col:col + r] = Bp.to(dtype) * p.scale
            col += r
        A = torch.cat([Ap.to(dtype) for Ap in As], dim=0)  # (Σ r_p, n)
        return LowRankDelta(B, A, 1.0)

    def deltas(self) -> dict[str, "_LazyDelta"]:
        return {m.key: _LazyDelta(self, m.module) for m in self.modules.values()}

    def fingerprint(self) -> str:
        """Content hash of the adapter (config and weights)."""
        from spectral.taskset import content_hash

        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for module in sorted(self.modules):  # a fused q/k/v update hashes its assembled factors
            d = self.delta(module)
            h.update(f"{module}:{content_hash(d.B)}:{content_hash(d.A)}:{d.scale!r}".encode())
        return h.hexdigest()


class _LazyDelta:
    """Reads a module's factors on first use."""

    def __init__(self, adapter: LoRAAdapter, module: str) -> None:
        self.adapter, self.module = adapter, module

    def get(self) -> LowRankDelta:
        return self.adapter.delta(self.module)


def read_adapter(path: str | os.PathLike[str], base: Mapping[str, Tensor]) -> LoRAAdapter:
    """A :class:`LoRAAdapter` validated against the base state dict ``base`` (canonical keys)."""
    shapes = {k: tuple(_shape(base, k)) for k in base}
    return LoRAAdapter(path, shapes)


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    shape_of = getattr(state, "shape", None)
    if callable(shape_of):
        try:
            return tuple(shape_of(key))
        except (KeyError, TypeError):
            pass
    return tuple(state[key].shape)


class LoRAState(Mapping[str, Tensor]):
    """The fine-tuned body θ_t = θ₀ + ΔW of one LoRA task, lazily: the base's keys; a key the adapter updates reads as
    θ₀ + s·B·A in the base's dtype. :meth:`low_rank_delta` hands the factors to the TaskSet, which then never forms
    the dense ΔW for an SVD."""

    def __init__(self, base: Mapping[str, Tensor], adapter: LoRAAdapter) -> None:
        self.base = base
        self.adapter = adapter
        self._deltas = adapter.deltas()

    def __getitem__(self, key: str) -> Tensor:
        value = self.base[key]
        lazy = self._deltas.get(key)
        if lazy is None:
            return value
        return (value.float() + lazy.get().dense()).to(value.dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)

    def __contains__(self, key: object) -> bool:
        return key in self.base

    def shape(self, key: str) -> tuple[int, ...]:
        return _shape(self.base, key)

    def adapted_keys(self) -> list[str]:
        return list(self._deltas)

    def low_rank_delta(self, key: str) -> LowRankDelta | None:
        """ΔW of ``key`` as factors: the adapter's, rank 0 for a 2-D weight it does not adapt, None otherwise."""
        lazy = self._deltas.get(key)
        if lazy is not None:
            return lazy.get()
        shape = _shape(self.base, key)
        return LowRankDelta.zero((int(shape[0]), int(shape[1]))) if len(shape) == 2 else None


class LoRAPool(ModelPool):
    """A base body and one LoRA adapter per task. Everything but the fine-tuned bodies (heads, data, metric, image
    tower or task model) comes from ``delegate``, a pool over the same base whose tasks have the same names — for a
    pool YAML, the same YAML with each task's checkpoint replaced by the base (:func:`lora_pool`)."""

    def __init__(self, delegate: ModelPool, adapters: Mapping[str, str | os.PathLike[str]], *,
                 name: str | None = None) -> None:
        if not adapters:
            raise AdapterConfigError("a LoRA pool needs at least one adapter")
        self.delegate = delegate
        self.family = delegate.family  # type: ignore[misc]
        self.architecture = delegate.architecture
        self.task_names = list(adapters)
        self.name = name or f"lora:{delegate.name}"
        self.adapter_paths = {t: Path(os.path.expanduser(str(p))) for t, p in adapters.items()}
        self._base: Mapping[str, Tensor] | None = None
        self._adapters: dict[str, LoRAAdapter] = {}

    def adapter(self, task: str) -> LoRAAdapter:
        if task not in self.adapter_paths:
            raise AdapterKeyError(f"pool {self.name!r} has no task {task!r}; tasks are {self.task_names}")
        if task not in self._adapters:
            try:
                self._adapters[task] = read_adapter(self.adapter_paths[task], self.base_state_dict())
            except AdapterError as err:
                raise type(err)(f"task {task!r}: {err}") from None
        return self._adapters[task]

    # -- ModelPool ---------------------------------------------------------------------------------------------
    def base_state_dict(self) -> Mapping[str, Tensor]:  # type: ignore[override]
        if self._base is None:
            self._base = self.delegate.base_state_dict()
        return self._base

    def finetuned_state_dict(self, task: str) -> LoRAState:  # type: ignore[override]
        return LoRAState(self.base_state_dict(), self.adapter(task))

    def dataset(self, task: str, split: Any) -> Any:
        return self.delegate.dataset(task, split)

    def task_scores(self, state_dict: Mapping[str, Tensor], **kwargs: Any) -> Any:  # type: ignore[override]
        return self.delegate.task_scores(state_dict, **kwargs)

    def head_fingerprint(self, task: str) -> str:
        return self.delegate.head_fingerprint(task)

    def task_forward(self, base: Mapping[str, Tensor], device: torch.device, **kwargs: Any) -> Any:
        return self.delegate.task_forward(base, device, **kwargs)

    def metric(self, task: str) -> str:
        return self.delegate.metric(task)

    def matrix_filters(self) -> dict[str, Any]:
        return self.delegate.matrix_filters()

    def class_names(self, task: str) -> list[str]:
        return self.delegate.class_names(task)

    def num_classes(self, task: str) -> int:
        return self.delegate.num_classes(task)

    def fingerprint(self) -> str:
        """Content key: the base pool's key (or name) and every adapter's content."""
        fp = getattr(self.delegate, "fingerprint", None)
        parts = [fp() if callable(fp) else self.delegate.name]
        parts += [f"{t}:{self.adapter(t).fingerprint()}" for t in self.task_names]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        return {**self.delegate.describe(), "name": self.name, "tasks": list(self.task_names),
                "adapters": {t: str(p) for t, p in self.adapter_paths.items()}}

    def __getattr__(self, name: str) -> Any:  # templates, tokenizer, task_model, base, ... of the delegate
        if name.startswith("_") or name in ("delegate",):
            raise AttributeError(name)
        return getattr(self.delegate, name)


class LoRAImagePool(LoRAPool, ImagePool):
    """:class:`LoRAPool` over a CLIP image-tower pool (heads, images and the tower from the delegate)."""

    def head(self, task: str) -> Tensor:
        return self.delegate.head(task)  # type: ignore[attr-defined]

    def build_image_encoder(self) -> Any:
        return self.delegate.build_image_encoder()  # type: ignore[attr-defined]

    def task_scores(self, state_dict: Mapping[str, Tensor], **kwargs: Any) -> Any:  # type: ignore[override]
        return ImagePool.task_scores(self, state_dict, **kwargs)

    def task_forward(self, base: Mapping[str, Tensor], device: torch.device, **kwargs: Any) -> Any:
        return ImagePool.task_forward(self, base, device, **kwargs)

    def head_fingerprint(self, task: str) -> str:
        return ImagePool.head_fingerprint(self, task)

    def num_classes(self, task: str) -> int:
        return int(self.head(task).shape[0])


def make_lora_pool(delegate: ModelPool, adapters: Mapping[str, str | os.PathLike[str]], *,
                   name: str | None = None) -> LoRAPool:
    """:class:`LoRAImagePool` over an image pool, :class:`LoRAPool` otherwise."""
    cls = LoRAImagePool if isinstance(delegate, ImagePool) else LoRAPool
    return cls(delegate, adapters, name=name)


def lora_pool(spec: Any, *, trust_pickle: bool = False) -> LoRAPool:
    """The LoRA pool of a :class:`~spectral.checkpoints.pool.PoolSpec` whose task checkpoints are adapter folders:
    the delegate is the same spec with every task's checkpoint replaced by the base (so heads, data and metrics come
    from the usual loaders), each task's adapter from its folder."""
    import dataclasses

    from spectral.checkpoints.pool import _pool_of_spec

    not_adapters = [str(t.checkpoint) for t in spec.tasks if not is_adapter_folder(t.checkpoint)]
    if not_adapters:
        raise AdapterConfigError(f"a pool mixes LoRA adapter folders with other checkpoints ({not_adapters[:3]}): "
                                 "give either adapters or fine-tuned models")
    base_spec = dataclasses.replace(spec, tasks=[dataclasses.replace(t, checkpoint=spec.base) for t in spec.tasks])
    delegate = _pool_of_spec(base_spec, trust_pickle)
    return make_lora_pool(delegate, {t.name: t.checkpoint for t in spec.tasks},
                          name=spec.name or str(spec.source or spec.base))


def lora_pool_of_folders(base: str | os.PathLike[str], adapters: list[str | os.PathLike[str]], *,
                         names: list[str] | None = None, trust_pickle: bool = False) -> LoRAPool:
    """``--base DIR --finetuned ADAPTER …``: task names from the adapter folders' names unless given."""
    from spectral.checkpoints.pool import PoolSpec, TaskSpec

    base_path = Path(os.path.expanduser(str(base)))
    names = names or [Path(a).resolve().name for a in adapters]
    if len(set(names)) != len(names):
        raise AdapterConfigError(f"task names must be unique, got {names}")
    from spectral.checkpoints.hf import is_language_folder

    layout = "hf" if is_language_folder(base_path) else "yaml"
    spec = PoolSpec(base=base_path, tasks=[TaskSpec(name=n, checkpoint=Path(a)) for n, a in zip(names, adapters)],
                    source=base_path.resolve(), layout=layout)
    return lora_pool(spec, trust_pickle=trust_pickle)
