"""A tiny pool whose test data are JPEG/PNG files in ImageFolder layout (the shape of real pools' data): a real
open_clip VisionTransformer (32 px, width 32, one block), random heads, images of assorted sizes and modes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from PIL import Image

from spectral.pool import ImagePool, ModelPool, add_visual_prefix

CLASSES = 3


def _encoder() -> VisionTransformer:
    return VisionTransformer(image_size=32, patch_size=16, width=32, layers=1, heads=2, mlp_ratio=2.0, output_dim=16)


def write_image_folder(root: Path, *, per_class: int, seed: int, classes: int = CLASSES) -> Path:
    """``root/{train,test}/c<k>/<i>.jpg|png`` with smooth random images of assorted sizes (RGB, L, RGBA)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", 1), ("test", per_class)):
        for c in range(classes):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = int(rng.integers(30, 60)), int(rng.integers(30, 60))
                coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
                img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
                img = Image.fromarray(np.clip(np.asarray(img) + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8))
                mode = ("RGB", "L", "RGBA")[i % 3]
                ext = "png" if mode == "RGBA" else "jpg"
                img.convert(mode).save(folder / f"{i:04d}.{ext}")
    return root


class FolderPool(ImagePool):
    architecture = "tiny-vit-32px"

    def __init__(self, root: Path, tasks: tuple[str, ...] = ("alpha", "beta"), per_class: int = 12,
                 name: str = "folder-pool") -> None:
        from spectral.data.folders import clip_preprocess

        self.name = name
        self.task_names = list(tasks)
        self.root = Path(root)
        self.transform = clip_preprocess(32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self._base = {k: v.detach().clone() for k, v in add_visual_prefix(_encoder().state_dict()).items()}
            g = torch.Generator().manual_seed(1)
            self._ft = {t: {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                            for k, v in self._base.items()} for t in tasks}
            self._heads = {t: F.normalize(torch.randn(CLASSES, 16, generator=g), dim=-1) for t in tasks}
        for i, t in enumerate(tasks):
            if not (self.root / t).exists():
                write_image_folder(self.root / t, per_class=per_class, seed=i)
        self._data: dict = {}

    def base_state_dict(self):
        return dict(self._base)

    def finetuned_state_dict(self, task):
        return dict(self._ft[task])

    def head(self, task):
        return self._heads[task]

    def dataset(self, task, split):
        from spectral.data.folders import open_folder_dataset

        if (task, split) not in self._data:
            self._data[(task, split)] = open_folder_dataset(self.root / task, split, transform=self.transform)
        return self._data[(task, split)]

    def build_image_encoder(self):
        return _encoder()
