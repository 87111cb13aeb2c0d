"""A model pool: one pre-trained CLIP, T fine-tuned image towers, their heads and their data.

This is the seam between where checkpoints come from (the demo zoo, or the papers' checkpoints on disk) and
everything that uses them (TaskSet/engine, evaluation, the dashboard, the CLI). Both the demo zoo and the
real-checkpoint loaders return a :class:`ModelPool`; nothing downstream knows which it got.

Canonical parameter names are those of open_clip's ``CLIP.state_dict()`` for the image tower, i.e. prefixed
``visual.`` (``visual.transformer.resblocks.0.attn.in_proj_weight``, ``visual.proj``, ...). Loaders rename
other layouts (task_vectors' ``model.visual.…``, HF CLIPVisionModel) into these.
"""
from __future__ import annotations

import abc
import importlib
import logging
import os
import threading
from typing import Callable, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

Split = Literal["train", "val", "test"]

log = logging.getLogger(__name__)


class ModelPool(abc.ABC):
    """Abstract pool of models. Implementations load lazily and may cache what they read."""

    #: human-readable, unique name (used in cache keys and the results store), e.g. "zoo-8" or a YAML path
    name: str
    #: open_clip model name the image tower is built from (e.g. "ViT-B-32" or the zoo's registered config)
    architecture: str
    #: task names in merge order
    task_names: list[str]

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @abc.abstractmethod
    def base_state_dict(self) -> dict[str, Tensor]:
        """Pre-trained image tower, canonical ``visual.*`` keys, on CPU."""

    @abc.abstractmethod
    def finetuned_state_dict(self, task: str) -> dict[str, Tensor]:
        """Fine-tuned image tower of one task, same keys and shapes as :meth:`base_state_dict`."""

    @abc.abstractmethod
    def head(self, task: str) -> Tensor:
        """Classification head of one task: (num_classes, embed_dim), rows L2-normalised, logit scale applied
        by the evaluator (zero-shot heads from the text tower, frozen during fine-tuning)."""

    @abc.abstractmethod
    def dataset(self, task: str, split: Split) -> Dataset:
        """Preprocessed images and integer labels: items are ``(image: Tensor[3, H, W], label: int)``."""

    @abc.abstractmethod
    def build_image_encoder(self) -> nn.Module:
        """A fresh image tower (``open_clip`` VisionTransformer) whose ``state_dict()`` keys, prefixed with
        ``visual.``, are those of :meth:`base_state_dict`; weights unspecified until loaded."""

    def class_names(self, task: str) -> list[str]:
        """Class names of a task, when known (for tables and confusion plots)."""
        return [str(i) for i in range(self.head(task).shape[0])]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "architecture": self.architecture, "tasks": list(self.task_names)}


def strip_visual_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Canonical ``visual.x`` keys → the VisionTransformer module's own ``x`` keys (for ``load_state_dict``)."""
    return {k[len("visual."):] if k.startswith("visual.") else k: v for k, v in state_dict.items()}


def add_visual_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A VisionTransformer's own keys → canonical ``visual.x`` keys."""
    return {k if k.startswith("visual.") else f"visual.{k}": v for k, v in state_dict.items()}


def load_image_encoder(pool: ModelPool, state_dict: dict[str, Tensor], device: torch.device | str = "cpu") -> nn.Module:
    """Build the pool's image tower and load a (merged) canonical state dict into it, strictly."""
    encoder = pool.build_image_encoder()
    encoder.load_state_dict(strip_visual_prefix(state_dict), strict=True)
    return encoder.to(device).eval()


# -- named pools (extensions, tests, Ray workers) ------------------------------------------------------------------
_POOL_FACTORIES: dict[str, Callable[[], ModelPool]] = {}
_POOL_LOCK = threading.Lock()


def register_pool(name: str, factory: Callable[[], ModelPool]) -> None:
    """Make ``name`` openable as a pool spec (for extensions and tests); ``factory()`` returns the pool."""
    with _POOL_LOCK:
        _POOL_FACTORIES[name] = factory


def registered_pools() -> list[str]:
    _load_env_factories()
    return sorted(_POOL_FACTORIES)


def registered_factory(name: str) -> Callable[[], ModelPool] | None:
    """The factory registered under ``name`` (also through ``$SPECTRAL_POOL_FACTORIES``), or None."""
    _load_env_factories()
    return _POOL_FACTORIES.get(name)


_ENV_LOADED: set[str] = set()


def _load_env_factories() -> None:
    """``SPECTRAL_POOL_FACTORIES="name=module:callable,…"`` registers pools by import path (set by whoever starts
    the server, e.g. the browser tests; never read from a page)."""
    raw = os.environ.get("SPECTRAL_POOL_FACTORIES", "")
    if not raw or raw in _ENV_LOADED:
        return
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, target = item.partition("=")
        module_name, _, attr = target.partition(":")
        if not (name and module_name and attr):
            log.warning("SPECTRAL_POOL_FACTORIES: ignoring %r (expected name=module:callable)", item)
            continue
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            log.warning("SPECTRAL_POOL_FACTORIES: cannot import %s (%s)", target, err)
            continue
        register_pool(name, factory)
    _ENV_LOADED.add(raw)
