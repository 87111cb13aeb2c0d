"""Unlabelled test images, classification logits and the entropy objective of test-time adaptation.

AdaMerging (Yang et al. 2024) and AdaRank (Lee et al. 2025, Eq. 6) minimise the Shannon entropy of the merged
model's predictions on a few *unlabelled* test images of every task. Labels never enter this module's sampling
path: :class:`UnlabelledImages` reads only the image of each ``(image, label)`` item.
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: CLIP's learned logit scale saturates at 100 (Radford et al. 2021); the task-vector code multiplies the
#: normalised head by it, so the entropy is that of these logits.
DEFAULT_LOGIT_SCALE = 100.0


def softmax_entropy(logits: Tensor) -> Tensor:
    """Per-sample Shannon entropy −Σ_c p_c log p_c of softmax(logits), in nats (AdaRank Eq. 6)."""
    return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)


def classify(features: Tensor, head: Tensor, logit_scale: float) -> Tensor:
    """CLIP zero-shot logits: logit_scale · normalise(features) @ headᵀ (head rows already normalised)."""
    return logit_scale * F.normalize(features, dim=-1) @ head.T


def pool_logit_scale(pool: Any) -> float:
    """The logit scale the pool's heads were trained with: the pool's ``logit_scale`` attribute when it has one,
    else exp(logit_scale) of its pre-trained CLIP (``clip_model()``, e.g. the demo zoo's), else CLIP's 100."""
    value = getattr(pool, "logit_scale", None)
    if callable(value):
        value = value()
    if value is not None:
        return float(value)
    clip_model = getattr(pool, "clip_model", None)
    if callable(clip_model):
        scale = getattr(clip_model(), "logit_scale", None)
        if isinstance(scale, torch.Tensor):
            return float(scale.detach().exp())
    return DEFAULT_LOGIT_SCALE


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_indices(seed: int, task: str, step: int, size: int, batch_size: int) -> Tensor:
    """The examples of optimisation step ``step``: a function of (seed, task, step) alone, so a resumed run sees
    the batches an uninterrupted one would have seen (with replacement only when the split is smaller)."""
    g = torch.Generator().manual_seed(_seed(seed, task, "step", step))
    if batch_size <= size:
        return torch.randperm(size, generator=g)[:batch_size]
    return torch.randint(size, (batch_size,), generator=g)


def selection_indices(seed: int, task: str, size: int, n: int) -> Tensor:
    """A fixed subset of ``n`` examples (seeded by (seed, task)) for the entropy-based selection."""
    g = torch.Generator().manual_seed(_seed(seed, task, "selection"))
    return torch.randperm(size, generator=g)[: min(n, size)]


class UnlabelledImages:
    """The test images of one task, without their labels, sampled deterministically.

    ``batch(step)`` draws ``batch_size`` images for an optimisation step from a generator seeded by
    (seed, task, step): a resumed run sees exactly the batches an uninterrupted one would have seen.
    ``fixed(n)`` is a fixed subset (seeded by (seed, task)) used to track the entropy for checkpoint selection.
    """

    def __init__(self, dataset: Any, task: str, *, seed: int = 0, cache_limit: int = 4096) -> None:
        self.dataset = dataset
        self.task = task
        self.seed = seed
        self.size = len(dataset)
        if self.size == 0:
            raise ValueError(f"task {task!r}: the test split is empty; test-time adaptation needs images")
        self._cache: dict[int, Tensor] = {}
        self._cache_limit = cache_limit

    def image(self, index: int) -> Tensor:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        item = self.dataset[index]
        image = item[0] if isinstance(item, (tuple, list)) else item  # the label (item[1]) is never read
        image = torch.as_tensor(image).clone()  # a normal tensor even if the pool made it in inference mode
        if len(self._cache) < self._cache_limit:
            self._cache[index] = image
        return image

    def images(self, indices: Sequence[int]) -> Tensor:
        return torch.stack([self.image(int(i)) for i in indices])

    def batch_indices(self, step: int, batch_size: int) -> Tensor:
        return step_indices(self.seed, self.task, step, self.size, batch_size)

    def batch(self, step: int, batch_size: int) -> Tensor:
        return self.images(self.batch_indices(step, batch_size).tolist())

    def fixed_indices(self, n: int) -> Tensor:
        return selection_indices(self.seed, self.task, self.size, n)

    def fixed(self, n: int) -> Tensor:
        return self.images(self.fixed_indices(n).tolist())
