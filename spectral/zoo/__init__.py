"""The demo zoo: a tiny real open_clip CLIP, pre-trained contrastively on generated image–caption pairs and
fine-tuned on generated tasks (8 ⊂ 14 ⊂ 20, as the papers' benchmark), so that every view of the dashboard
works offline on real merged models.

>>> pool = open_zoo_pool("zoo-8")          # doctest: +SKIP  (builds into cache/zoo/ on first use)
"""
from __future__ import annotations

from spectral.zoo.build import (
    ZOO_VERSION, ZooConfig, ZooError, build_micro_zoo, build_zoo, is_built, read_manifest, zoo_root,
)
from spectral.zoo.lm import LM_ZOO_NAME, build_lm_zoo, lm_zoo_root
from spectral.zoo.model import ModelSpec, create_clip, get_tokenizer, register_model_config
from spectral.zoo.pool import ImageTensorDataset, ZooPool, ensure_zoo, open_zoo_pool
from spectral.zoo.tasks import ALL_TASKS, SUITES, TASKS, TaskSpec, get_task

__all__ = [
    "ALL_TASKS", "ImageTensorDataset", "LM_ZOO_NAME", "build_lm_zoo", "lm_zoo_root", "ModelSpec", "SUITES", "TASKS", "TaskSpec", "ZOO_VERSION", "ZooConfig",
    "ZooError", "ZooPool", "build_micro_zoo", "build_zoo", "create_clip", "ensure_zoo", "get_task", "get_tokenizer", "is_built",
    "open_zoo_pool", "read_manifest", "register_model_config", "zoo_root",
]
