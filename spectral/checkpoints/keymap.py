"""Parameter names of every supported layout → canonical open_clip names (``visual.*`` image tower).

Layouts:

* open_clip ``CLIP.state_dict()``: ``visual.*`` plus the text tower (``transformer.*``, ``token_embedding.weight``,
  ``positional_embedding``, ``ln_final.*``, ``text_projection``, ``logit_scale``);
* the same under a prefix: task_vectors / tall_masks ``ImageEncoder`` state dicts (``model.visual.*``), DDP
  (``module.``), ``ImageClassifier`` (``image_encoder.model.visual.*``);
* a bare ``VisionTransformer`` state dict (``conv1.weight``, ``transformer.resblocks.*``, ...);
* Hugging Face ``CLIPVisionModel`` / ``CLIPModel`` (``vision_model.encoder.layers.N.self_attn.q_proj.weight``,
  ...): q, k and v are fused into open_clip's ``attn.in_proj_weight`` (rows q, then k, then v — the order
  ``nn.MultiheadAttention`` splits them in), ``visual_projection.weight`` (embed × width) becomes ``visual.proj``
  (width × embed, transposed). transformers ≥ 5 saves a ``CLIPVisionModel`` without the ``vision_model.`` prefix
  (``embeddings.patch_embedding.weight``, ``encoder.layers.N.…``): read the same way.

The result is a mapping with canonical keys; for Hugging Face checkpoints the fused entries are computed when
read (:class:`LazyStateDict`), so a ViT-L/14 × 20 pool is never materialised at once.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from spectral.checkpoints.errors import CheckpointError
from spectral.errors import MissingKeyError, ShapeMismatchError

__all__ = [
    "CanonicalWeights",
    "LazyStateDict",
    "canonicalize",
    "is_hf_clip",
    "HF_VISION_PREFIX_RE",
]

#: names of open_clip's CLIP text tower at the top level of CLIP.state_dict()
TEXT_TOP_LEVEL = ("transformer.", "token_embedding.", "positional_embedding", "ln_final.", "text_projection",
                  "logit_scale", "logit_bias", "attn_mask")

HF_VISION_PREFIX_RE = re.compile(r"^(.*?)vision_model\.embeddings\.patch_embedding\.weight$")
_OPEN_CLIP_VISUAL_RE = re.compile(r"^(.*?)visual\.conv1\.weight$")


class LazyStateDict(Mapping[str, Tensor]):
    """A read-only state dict whose values are produced on access (and not kept)."""

    def __init__(self, getters: dict[str, Callable[[], Tensor]], shapes: dict[str, tuple[int, ...]]) -> None:
        self._getters = getters
        self._shapes = shapes

    def __getitem__(self, key: str) -> Tensor:
        return self._getters[key]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._getters)

    def __len__(self) -> int:
        return len(self._getters)

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of an entry without computing it."""
        return self._shapes[key]

    def __repr__(self) -> str:
        return f"LazyStateDict({len(self)} tensors)"


def shape_of(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    """Shape of ``state[key]`` without materialising a lazy entry."""
    shape = getattr(state, "shape", None)
    if callable(shape):  # LazyStateDict and overlays: no computation
        return tuple(shape(key))
    return tuple(state[key].shape)


@dataclass
class CanonicalWeights:
    """The image tower (canonical ``visual.*`` keys) and, when the file has it, the open_clip text tower."""

    visual: Mapping[str, Tensor]
    text: dict[str, Tensor] | None
    layout: str  # "open_clip", "prefixed:<prefix>", "vision_transformer", "hf"


def is_hf_clip(keys: list[str] | set[str] | Mapping[str, object]) -> bool:
    return any(HF_VISION_PREFIX_RE.match(k) for k in keys) or (
        "embeddings.patch_embedding.weight" in keys and "encoder.layers.0.self_attn.q_proj.weight" in keys)


def canonicalize(state: Mapping[str, object], source: str) -> CanonicalWeights:
    """Canonical image-tower weights of a loaded state dict (non-tensor entries such as tall_masks'
    ``model_name`` are ignored). Raises CheckpointError when no image tower is recognised."""
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, Tensor)}
    keys = list(tensors)
    hf = [m for m in (HF_VISION_PREFIX_RE.match(k) for k in keys) if m]
    if hf:
        return _canonicalize_hf(tensors, hf[0].group(1), source)
    if "embeddings.patch_embedding.weight" in tensors and "encoder.layers.0.self_attn.q_proj.weight" in tensors:
        return _canonicalize_hf(tensors, "", source, vision_prefix="")  # transformers ≥ 5 CLIPVisionModel
    oc = sorted((m.group(1) for m in (_OPEN_CLIP_VISUAL_RE.match(k) for k in keys) if m), key=len)
    if oc:
        prefix = oc[0]
        if len(set(oc)) > 1:
            raise CheckpointError(
                f"{source}: found several image towers (prefixes {sorted(set(oc))!r}); save one model per file"
            )
        vis_prefix = prefix + "visual."
        visual = {"visual." + k[len(vis_prefix):]: v for k, v in tensors.items() if k.startswith(vis_prefix)}
        text = {k[len(prefix):]: v for k, v in tensors.items()
                if k.startswith(prefix) and not k.startswith(vis_prefix) and k[len(prefix):].startswith(TEXT_TOP_LEVEL)}
        layout = "open_clip" if prefix == "" else f"prefixed:{prefix}"
        return CanonicalWeights(visual=visual, text=text or None, layout=layout)
    if "conv1.weight" in tensors and any(k.startswith("transformer.resblocks.") for k in keys):
        # a bare VisionTransformer state dict
        return CanonicalWeights(visual={"visual." + k: v for k, v in tensors.items()}, text=None,
                                layout="vision_transformer")
    sample = ", ".join(keys[:5]) or "(no tensors)"
    raise CheckpointError(
        f"{source}: no CLIP image tower found (looked for open_clip 'visual.conv1.weight' under any prefix and "
        f"Hugging Face 'vision_model.embeddings.patch_embedding.weight'); first keys: {sample}"
    )


# --- Hugging Face CLIP → open_clip -----------------------------------------------------------------------------

_HF_SIMPLE = {
    "embeddings.class_embedding": "class_embedding",
    "embeddings.patch_embedding.weight": "conv1.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "pre_layrnorm.weight": "ln_pre.weight",  # sic: the transformers name has the typo
    "pre_layrnorm.bias": "ln_pre.bias",
    "pre_layernorm.weight": "ln_pre.weight",
    "pre_layernorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight",
    "post_layernorm.bias": "ln_post.bias",
}
_HF_LAYER = {
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_LAYER_RE = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_HF_IGNORED = ("embeddings.position_ids",)


def _canonicalize_hf(tensors: dict[str, Tensor], prefix: str, source: str, *,
                     vision_prefix: str = "vision_model.") -> CanonicalWeights:
    vp = prefix + vision_prefix
    getters: dict[str, Callable[[], Tensor]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    qkv: dict[tuple[int, str], dict[str, str]] = {}  # (layer, weight|bias) -> {q|k|v: hf key}
    unknown: list[str] = []

    def direct(key: str, hf_key: str) -> None:
        getters[key] = lambda: tensors[hf_key]
        shapes[key] = tuple(tensors[hf_key].shape)

    for hf_key in tensors:
        if not hf_key.startswith(vp):
            continue
        rest = hf_key[len(vp):]
        if rest in _HF_IGNORED:
            continue
        if rest in _HF_SIMPLE:
            direct("visual." + _HF_SIMPLE[rest], hf_key)
            continue
        m = _HF_LAYER_RE.match(rest)
        if m:
            layer, name = int(m.group(1)), m.group(2)
            base = f"visual.transformer.resblocks.{layer}."
            if name in _HF_LAYER:
                direct(base + _HF_LAYER[name], hf_key)
                continue
            qm = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", name)
            if qm:
                qkv.setdefault((layer, qm.group(2)), {})[qm.group(1)] = hf_key
                continue
        unknown.append(hf_key)
    if unknown:
        raise CheckpointError(
            f"{source}: Hugging Face CLIP vision keys spectral cannot map to open_clip: {unknown[:5]}"
        )
    for (layer, kind), parts in sorted(qkv.items()):
        key = f"visual.transformer.resblocks.{layer}.attn.in_proj_{kind}"
        for p in "qkv":
            if p not in parts:
                raise MissingKeyError(
                    f"{source}: {vp}encoder.layers.{layer}.self_attn.{p}_proj.{kind} is missing "
                    f"(needed with the other projections to build open_clip's {key})"
                )
        shp = [tuple(tensors[parts[p]].shape) for p in "qkv"]
        if len(set(shp)) != 1:
            raise ShapeMismatchError(
                f"{source}: q/k/v projections of layer {layer} ({kind}) have different shapes {shp}"
            )
        shapes[key] = (3 * shp[0][0],) + shp[0][1:]
        hf_keys = [parts[p] for p in "qkv"]
        getters[key] = lambda hf_keys=hf_keys: torch.cat([tensors[k] for k in hf_keys], dim=0)
    proj_key = prefix + "visual_projection.weight"
    if proj_key in tensors:
        getters["visual.proj"] = lambda: tensors[proj_key].t().contiguous()
        shapes["visual.proj"] = tuple(reversed(tensors[proj_key].shape))
    return CanonicalWeights(visual=LazyStateDict(getters, shapes), text=None, layout="hf")
