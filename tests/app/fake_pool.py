"""A tiny synthetic model pool for dashboard tests: a real open_clip VisionTransformer (16×16 images, width 32,
2 blocks), random fine-tuned copies with structured low-rank task vectors, random heads, and small datasets whose
labels are each fine-tuned model's own predictions (fine-tuned accuracy 100 %, zero-shot and merges below).

Registered by the app tests with ``spectral.app_state.register_pool``; the browser tests' server gets it through
``SPECTRAL_POOL_FACTORIES=fake-4=fake_pool:make_pool``.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch.utils.data import Dataset, TensorDataset

from spectral.pool import ImagePool, ModelPool, add_visual_prefix, strip_visual_prefix

TASKS = ("digits", "signs", "scenes", "textures")
NAME = "fake-4"


def _encoder() -> VisionTransformer:
    return VisionTransformer(image_size=16, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=4.0, output_dim=16)


class FakePool(ImagePool):
    architecture = "fake-vit-w32-l2"

    def __init__(self, name: str = NAME, tasks: tuple[str, ...] = TASKS, samples: int = 96, seed: int = 0) -> None:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
            self._build(name, tasks, samples, seed)

    def _build(self, name: str, tasks: tuple[str, ...], samples: int, seed: int) -> None:
        self.name = name
        self.task_names = list(tasks)
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        base = _encoder()
        self._base = {k: v.detach().clone() for k, v in add_visual_prefix(base.state_dict()).items()}
        shared = {k: torch.randn(v.shape, generator=g) for k, v in self._base.items() if v.ndim == 2}
        self._finetuned: dict[str, dict[str, torch.Tensor]] = {}
        self._heads: dict[str, torch.Tensor] = {}
        self._data: dict[str, TensorDataset] = {}
        for t, task in enumerate(self.task_names):
            sd = {}
            for k, v in self._base.items():
                if not v.is_floating_point():
                    sd[k] = v.clone()
                    continue
                if v.ndim == 2:
                    m, n = v.shape
                    r = max(1, min(m, n) // 4)
                    low = torch.randn(m, r, generator=g) @ torch.randn(r, n, generator=g) / r ** 0.5
                    delta = 0.08 * low + 0.03 * shared[k] + 0.01 * torch.randn(m, n, generator=g)
                else:
                    delta = 0.02 * torch.randn(v.shape, generator=g)
                sd[k] = v + delta
            self._finetuned[task] = sd
            self._heads[task] = F.normalize(torch.randn(5, 16, generator=g), dim=-1)
            images = torch.randn(samples, 3, 16, 16, generator=g)
            model = self.build_image_encoder()
            model.load_state_dict(strip_visual_prefix(sd))
            with torch.no_grad():
                labels = (F.normalize(model.eval()(images), dim=-1) @ self._heads[task].T).argmax(-1)
            self._data[task] = TensorDataset(images, labels)

    def base_state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._base)

    def finetuned_state_dict(self, task: str) -> dict[str, torch.Tensor]:
        return dict(self._finetuned[task])

    def head(self, task: str) -> torch.Tensor:
        return self._heads[task]

    def dataset(self, task: str, split: str) -> Dataset:
        return self._data[task]

    def build_image_encoder(self) -> torch.nn.Module:
        return _encoder()


@functools.lru_cache(maxsize=None)
def make_pool() -> FakePool:
    """The shared fake pool (built once per process, ~0.2 s)."""
    return FakePool()
