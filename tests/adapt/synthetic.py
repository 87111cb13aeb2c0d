"""A tiny synthetic model pool for the adaptation tests: a real open_clip VisionTransformer, fine-tuned copies made
of random perturbations, random normalised heads and random images."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from open_clip.transformer import VisionTransformer

from spectral.engine import Engine
from spectral.pool import ImagePool, ModelPool, add_visual_prefix
from spectral.taskset import TaskSet


class _Images(Dataset):
    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


class SyntheticPool(ImagePool):
    architecture = "synthetic-vit"

    def __init__(self, num_tasks: int = 3, *, classes: int = 5, width: int = 16, layers: int = 2,
                 image_size: int = 16, patch_size: int = 8, output_dim: int = 12, n_test: int = 40,
                 scale: float = 0.03, seed: int = 0, shuffle_labels: bool = False) -> None:
        self.name = f"synthetic-{num_tasks}-{seed}"
        self.task_names = [f"task{t}" for t in range(num_tasks)]
        self._cfg = dict(image_size=image_size, patch_size=patch_size, width=width, layers=layers,
                         heads=max(1, width // 8), mlp_ratio=4.0, output_dim=output_dim)
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        base = self.build_image_encoder()
        self._base = add_visual_prefix({k: v.detach().clone() for k, v in base.state_dict().items()})
        self._ft = {}
        for t in self.task_names:
            self._ft[t] = {k: v + scale * v.std().clamp_min(0.1) * torch.randn(v.shape, generator=g)
                           if v.is_floating_point() else v.clone() for k, v in self._base.items()}
        self._heads = {t: nn.functional.normalize(torch.randn(classes, output_dim, generator=g), dim=-1)
                       for t in self.task_names}
        self._data = {}
        for t in self.task_names:
            images = torch.randn(n_test, 3, image_size, image_size, generator=g)
            labels = torch.randint(classes, (n_test,), generator=g)
            if shuffle_labels:
                labels = labels[torch.randperm(n_test, generator=torch.Generator().manual_seed(99))]
            self._data[t] = _Images(images, labels)
        self.logit_scale = 20.0

    def base_state_dict(self):
        return dict(self._base)

    def finetuned_state_dict(self, task: str):
        return dict(self._ft[task])

    def head(self, task: str) -> Tensor:
        return self._heads[task]

    def dataset(self, task: str, split: str) -> Dataset:
        return self._data[task]

    def build_image_encoder(self) -> nn.Module:
        return VisionTransformer(**self._cfg)


def make_engine(pool: ModelPool, tmp_path, matrix_filter: str = "default") -> Engine:
    """A CPU engine over the pool, its SVD cache under ``tmp_path``."""
    return Engine(TaskSet.from_pool(pool, matrix_filter=matrix_filter), cache_dir=tmp_path / "cache", device="cpu")
