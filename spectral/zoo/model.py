"""The zoo's CLIP: a tiny open_clip model registered as an open_clip model config.

The image tower is an ``open_clip`` VisionTransformer with exactly ViT-B/32's parameter names (``conv1``,
``class_embedding``, ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.attn.in_proj_weight`` /
``out_proj``, ``mlp.c_fc`` / ``c_proj``, ``ln_post``, ``proj``), only narrower, shallower and on 32×32 images;
the text tower is a small open_clip text transformer with the standard BPE tokenizer (bundled with open_clip, no
download). Nothing here loads pretrained weights: the zoo pre-trains its own.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from spectral.io import atomic_write_bytes

log = logging.getLogger(__name__)

_REGISTERED: set[str] = set()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of the zoo's CLIP. ``name`` is the open_clip model name it is registered under."""

    image_size: int = 32
    patch_size: int = 8
    width: int = 128
    layers: int = 4
    head_width: int = 32
    embed_dim: int = 64
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    context_length: int = 20

    @property
    def name(self) -> str:
        return (
            f"spectral-zoo-vit-i{self.image_size}-p{self.patch_size}-w{self.width}-l{self.layers}"
            f"-e{self.embed_dim}-t{self.text_width}x{self.text_layers}"
        )

    def open_clip_config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {
                "image_size": self.image_size,
                "layers": self.layers,
                "width": self.width,
                "head_width": self.head_width,
                "patch_size": self.patch_size,
            },
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": 49408,
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _config_dir() -> Path:
    env = os.environ.get("SPECTRAL_OPEN_CLIP_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"spectral-open-clip-configs-{os.getuid() if hasattr(os, 'getuid') else 0}"


def register_model_config(spec: ModelSpec) -> str:
    """Register ``spec`` with open_clip (``open_clip.add_model_config``) once per process; returns its name."""
    name = spec.name
    with _LOCK:
        if name in _REGISTERED and name in open_clip.list_models():
            return name
        path = _config_dir() / f"{name}.json"
        payload = json.dumps(spec.open_clip_config(), indent=1, sort_keys=True).encode()
        if not path.is_file() or path.read_bytes() != payload:
            atomic_write_bytes(path, payload)
        open_clip.add_model_config(path)
        _REGISTERED.add(name)
    return name


class _QuietOpenClip(logging.Filter):
    """Drops open_clip's chatter while the zoo builds a model (it logs to the root logger): its INFO lines and the
    warning that no pretrained weights were loaded (the zoo never loads any: it trains its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return "No pretrained weights loaded" not in record.getMessage()


def create_clip(spec: ModelSpec) -> nn.Module:
    """A freshly initialised open_clip ``CLIP`` of the zoo's architecture (random weights, never downloads)."""
    name = register_model_config(spec)
    root = logging.getLogger()
    quiet = _QuietOpenClip()
    root.addFilter(quiet)
    try:
        model = open_clip.create_model(name, pretrained=None)
    finally:
        root.removeFilter(quiet)
    return model


def get_tokenizer(spec: ModelSpec) -> Any:
    """open_clip's tokenizer for the registered config (the bundled BPE ``SimpleTokenizer``)."""
    return open_clip.get_tokenizer(register_model_config(spec))


# -- image preprocessing: images are generated directly at the model's resolution -------------------------------
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → uint8 (how images are stored)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) images → the CLIP-normalised float32 input of the image tower."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return (x - MEAN) / STD
