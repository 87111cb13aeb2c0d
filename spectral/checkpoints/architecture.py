"""Which open_clip ViT an image tower is, from its tensor shapes alone, and building it without downloads.

The shapes fix width (``conv1`` output channels), patch size (``conv1`` kernel), image size (grid from
``positional_embedding``), depth (number of ``resblocks``), MLP width and output dimension (``proj``). These are
matched against open_clip's own configurations (``open_clip.get_model_config``), the papers' three first
(ViT-B-32, ViT-B-16, ViT-L-14), then every other registered plain-ViT config (including ones registered at run
time, e.g. the demo zoo's). The number of attention heads is not visible in the shapes; open_clip's configs
(head width 64) decide it.

QuickGELU: OpenAI's CLIP weights, which every checkpoint of the papers starts from, use QuickGELU, but open_clip's
``ViT-B-32`` config (as opposed to ``ViT-B-32-quickgelu``) builds nn.GELU unless the OpenAI weights are loaded
through it. Shapes cannot tell them apart, so the activation is a separate ``quick_gelu`` flag of the pool.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spectral.checkpoints.errors import ArchitectureMismatchError, UnsupportedArchitectureError
from spectral.checkpoints.keymap import shape_of
from spectral.errors import MissingKeyError, ShapeMismatchError

__all__ = [
    "PAPER_ARCHITECTURES",
    "TowerShape",
    "build_clip_model",
    "build_image_encoder",
    "detect_architecture",
    "expected_visual_shapes",
    "family_name",
    "tower_shape",
    "tower_shape_of_config",
    "uses_quick_gelu",
    "validate_against",
]

PAPER_ARCHITECTURES = ("ViT-B-32", "ViT-B-16", "ViT-L-14")


@dataclass(frozen=True)
class TowerShape:
    """What the shapes of a ViT image tower reveal."""

    width: int
    patch_size: int
    image_size: int
    layers: int
    mlp_width: int
    embed_dim: int

    def describe(self) -> str:
        return (f"width {self.width}, patch {self.patch_size}, image {self.image_size}, {self.layers} layers, "
                f"MLP {self.mlp_width}, output dim {self.embed_dim}")


def tower_shape(state: Mapping[str, Tensor], source: str = "checkpoint") -> TowerShape:
    """Read a :class:`TowerShape` from canonical ``visual.*`` weights."""
    need = ("visual.conv1.weight", "visual.positional_embedding", "visual.transformer.resblocks.0.mlp.c_fc.weight")
    for key in need:
        if key not in state:
            raise MissingKeyError(f"{source}: image-tower parameter {key!r} is missing; cannot tell the architecture")
    conv = shape_of(state, "visual.conv1.weight")
    pos = shape_of(state, "visual.positional_embedding")
    width, patch = conv[0], conv[-1]
    tokens = pos[0] - 1
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise UnsupportedArchitectureError(
            f"{source}: positional_embedding has shape {pos}, not 1 + a square number of patches"
        )
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"visual\.transformer\.resblocks\.(\d+)\.", k)))
    mlp = shape_of(state, "visual.transformer.resblocks.0.mlp.c_fc.weight")[0]
    embed = shape_of(state, "visual.proj")[1] if "visual.proj" in state else width
    return TowerShape(width=width, patch_size=patch, image_size=grid * patch, layers=layers, mlp_width=mlp,
                      embed_dim=embed)


def _get_config(name: str) -> dict[str, Any] | None:
    import open_clip

    cfg = open_clip.get_model_config(name)
    return dict(cfg) if cfg else None


def tower_shape_of_config(name: str) -> TowerShape | None:
    """The :class:`TowerShape` an open_clip config builds, or None for non-ViT configs (timm, HF towers)."""
    cfg = _get_config(name)
    if not cfg:
        return None
    v = cfg.get("vision_cfg", {})
    if not isinstance(v, dict) or v.get("timm_model_name") or v.get("hf_model_name") or isinstance(v.get("layers"), (list, tuple)):
        return None
    if any(v.get(k) for k in ("attentional_pool", "no_ln_pre", "final_ln_after_pool", "attn_pooler_queries")):
        return None
    if v.get("pool_type", "tok") != "tok" or v.get("output_tokens"):
        return None
    image = v.get("image_size", 224)
    patch = v.get("patch_size", 16)
    if isinstance(image, (list, tuple)) or isinstance(patch, (list, tuple)):
        return None
    width = int(v.get("width", 768))
    mlp_ratio = float(v.get("mlp_ratio", 4.0))
    return TowerShape(width=width, patch_size=int(patch), image_size=int(image), layers=int(v.get("layers", 12)),
                      mlp_width=int(width * mlp_ratio), embed_dim=int(cfg.get("embed_dim", width)))


def family_name(name: str) -> str:
    """``ViT-B-32-quickgelu`` → ``ViT-B-32`` (same shapes, different activation)."""
    return name[: -len("-quickgelu")] if name.endswith("-quickgelu") else name


def uses_quick_gelu(name: str) -> bool:
    cfg = _get_config(name) or {}
    return bool(cfg.get("quick_gelu", False))


def _candidates() -> list[str]:
    import open_clip

    names = list(PAPER_ARCHITECTURES)
    names += [n for n in open_clip.list_models() if n not in names and not n.endswith("-quickgelu")]
    return names


def detect_architecture(state: Mapping[str, Tensor], source: str = "checkpoint") -> str:
    """Name of the open_clip config whose image tower has these shapes (``"ViT-B-32"``, ...)."""
    shape = tower_shape(state, source)
    for name in _candidates():
        if tower_shape_of_config(name) == shape:
            return name
    raise UnsupportedArchitectureError(
        f"{source}: image tower with {shape.describe()} matches no open_clip ViT config "
        f"(supported by the papers: {', '.join(PAPER_ARCHITECTURES)}; register others with open_clip.add_model_config)"
    )


@functools.lru_cache(maxsize=32)
def _expected_shapes_cached(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    cfg = _get_config(name)
    if cfg is None:
        raise UnsupportedArchitectureError(f"open_clip has no model config named {name!r}")
    with torch.device("meta"):
        visual = _vision_tower(cfg, quick_gelu=False)
    return tuple(("visual." + k, tuple(v.shape)) for k, v in visual.state_dict().items())


def expected_visual_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Canonical key → shape of the image tower open_clip builds for ``name`` (on the meta device: instant)."""
    return dict(_expected_shapes_cached(family_name(name)))


def validate_against(state: Mapping[str, Tensor], architecture: str, source: str) -> None:
    """Every image-tower parameter of ``architecture`` present with its shape, and nothing else.

    Raises MissingKeyError / ShapeMismatchError naming the file, the key and the shapes, or
    ArchitectureMismatchError when the checkpoint is a different ViT altogether."""
    expected = expected_visual_shapes(architecture)
    missing = [k for k in expected if k not in state]
    if missing and "visual.conv1.weight" in state:
        try:
            other = detect_architecture(state, source)
        except (UnsupportedArchitectureError, MissingKeyError):
            other = None
        if other and family_name(other) != family_name(architecture):
            raise ArchitectureMismatchError(f"{source} is a {other}, the pool is {architecture}")
    if missing:
        raise MissingKeyError(
            f"{source}: {len(missing)} image-tower parameter(s) of {architecture} missing, e.g. {missing[0]!r}"
            + (f" (and {missing[1:3]})" if len(missing) > 1 else "")
        )
    for key, shp in expected.items():
        got = shape_of(state, key)
        if tuple(got) != tuple(shp):
            try:
                other = detect_architecture(state, source)
            except Exception:  # noqa: BLE001 - only for a better message
                other = None
            if other and family_name(other) != family_name(architecture):
                raise ArchitectureMismatchError(
                    f"{source} is a {other}, the pool is {architecture} (e.g. {key!r}: {tuple(got)} vs {tuple(shp)})"
                )
            raise ShapeMismatchError(f"{source}: parameter {key!r} has shape {tuple(got)}, {architecture} expects {tuple(shp)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ShapeMismatchError(
            f"{source}: {len(extra)} image-tower parameter(s) that {architecture} does not have, e.g. {extra[:3]}"
        )


def _vision_tower(cfg: dict[str, Any], quick_gelu: bool) -> nn.Module:
    from open_clip.model import _build_vision_tower

    return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], quick_gelu=quick_gelu)


def build_image_encoder(architecture: str, *, quick_gelu: bool | None = None) -> nn.Module:
    """A fresh open_clip VisionTransformer for ``architecture`` (random weights, no download). ``quick_gelu``
    None means the config's own setting."""
    cfg = _get_config(architecture)
    if cfg is None:
        raise UnsupportedArchitectureError(f"open_clip has no model config named {architecture!r}")
    qg = bool(cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
    return _vision_tower(cfg, quick_gelu=qg)


def build_clip_model(architecture: str, *, quick_gelu: bool | None = None) -> nn.Module:
    """A whole open_clip CLIP (image and text towers), random weights, built with ``pretrained=None``."""
    import open_clip

    kwargs: dict[str, Any] = {}
    if quick_gelu:
        kwargs["force_quick_gelu"] = True
    return open_clip.create_model(architecture, pretrained=None, **kwargs)
