"""``ZooPool``: the demo zoo as a :class:`spectral.pool.ModelPool` (what the engine, evaluation and app read)."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.data import Dataset

from spectral.pool import ImagePool, ModelPool, Split
from spectral.zoo.build import ZooConfig, ZooError, build_zoo, load_clip, read_manifest, train_split, zoo_root
from spectral.zoo.model import ModelSpec, create_clip, get_tokenizer, preprocess

log = logging.getLogger(__name__)


class ImageTensorDataset(Dataset):
    """Stored uint8 images and labels; items are ``(preprocessed image (3, H, W) float32, int label)``.

    :meth:`tensors` hands the whole split over at once (preprocessed), which is what the evaluator batches."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ZooError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return preprocess(self.images[i : i + 1])[0], int(self.labels[i])

    def tensors(self) -> tuple[Tensor, Tensor]:
        return preprocess(self.images), self.labels


class ZooPool(ImagePool):
    """The first tasks of a built zoo (``root`` is its folder, see :mod:`spectral.zoo.build`)."""

    def __init__(self, root: str | Path, tasks: Sequence[str] | None = None, *, num_tasks: int | None = None) -> None:
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if manifest is None:
            raise ZooError(f"no zoo at {self.root} (missing {self.root / 'manifest.json'}); "
                           "build it with `python -m spectral zoo build`")
        self.manifest = manifest
        self.config = ZooConfig.from_dict(manifest["config"])
        if manifest.get("config_hash") != self.config.fingerprint():
            log.warning("the zoo at %s was built by other zoo code or settings; rebuild it with "
                        "`python -m spectral zoo build` (opening it anyway)", self.root)
        built = [t for t in manifest.get("task_order", []) if t in manifest["tasks"]]
        if tasks is None:
            tasks = built if num_tasks is None else self.config.suite(num_tasks)
        missing = [t for t in tasks if t not in manifest["tasks"]]
        if missing:
            raise ZooError(f"zoo at {self.root} has no task(s) {missing}; built tasks are {built}")
        if not tasks:
            raise ZooError(f"zoo at {self.root} has no fine-tuned tasks yet")
        self.task_names = list(tasks)
        self.seed = int(manifest["seed"])
        self.spec = ModelSpec.from_dict(manifest["config"]["model"])
        self.architecture = self.spec.name
        suffix = "" if (self.config.name == "default" and self.seed == 0) else f"-{self.config.name}-s{self.seed}"
        self.name = f"zoo-{len(self.task_names)}{suffix}"
        self._base: dict[str, Tensor] | None = None
        self._finetuned: dict[str, dict[str, Tensor]] = {}
        self._heads: dict[str, Tensor] = {}
        self._data: dict[tuple[str, str], ImageTensorDataset] = {}
        self._encoder: nn.Module | None = None
        self._clip: nn.Module | None = None

    # -- ModelPool --------------------------------------------------------------------------------------------
    def base_state_dict(self) -> dict[str, Tensor]:
        if self._base is None:
            full = load_file(str(self.root / self.manifest["base"]["file"]))
            self._base = {k: v for k, v in full.items() if k.startswith("visual.")}
        return dict(self._base)

    def finetuned_state_dict(self, task: str) -> dict[str, Tensor]:
        entry = self._entry(task)
        if task not in self._finetuned:
            self._finetuned[task] = load_file(str(self.root / entry["checkpoint"]))
        return dict(self._finetuned[task])

    def head(self, task: str) -> Tensor:
        entry = self._entry(task)
        if task not in self._heads:
            self._heads[task] = load_file(str(self.root / entry["head"]))["head"]
        return self._heads[task]

    def dataset(self, task: str, split: Split) -> ImageTensorDataset:
        entry = self._entry(task)
        key = (task, split)
        if key not in self._data:
            if split == "train":
                x, y = train_split(self.config, self.seed, task)
            elif split in ("val", "test"):
                stored = load_file(str(self.root / entry["data"]))
                x, y = stored[f"{split}_images"], stored[f"{split}_labels"]
            else:
                raise ZooError(f"unknown split {split!r}; splits are train, val, test")
            self._data[key] = ImageTensorDataset(x, y)
        return self._data[key]

    def build_image_encoder(self) -> nn.Module:
        if self._encoder is None:
            self._encoder = create_clip(self.spec).visual.eval()
        return copy.deepcopy(self._encoder)

    def class_names(self, task: str) -> list[str]:
        return list(self._entry(task)["classes"])

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "root": str(self.root),
            "seed": self.seed,
            "config": self.config.name,
            "analogues": {t: self._entry(t)["analogue"] for t in self.task_names},
        }

    # -- zoo extras --------------------------------------------------------------------------------------------
    def templates(self, task: str) -> list[str]:
        return list(self._entry(task)["templates"])

    def clip_model(self) -> nn.Module:
        """The pre-trained CLIP (both towers), for building heads from other prompts."""
        if self._clip is None:
            self._clip = load_clip(self.root, self.manifest)
        return self._clip

    def tokenizer(self) -> Any:
        return get_tokenizer(self.spec)

    def recorded_accuracy(self, kind: str, split: str = "test") -> dict[str, float]:
        """Accuracies recorded at build time: ``kind`` is "zeroshot" or "finetuned"."""
        return {t: float(self._entry(t)["accuracy"][kind][split]) for t in self.task_names}

    def fingerprint(self) -> str:
        """Content key of this pool: hashes of the base model, each task's checkpoint, head and data, in order."""
        parts = [self.manifest["base"]["sha256"]]
        for t in self.task_names:
            e = self._entry(t)
            parts.append(f"{t}:{e['checkpoint_sha256']}:{e['head_sha256']}:{e['data_sha256']}")
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _entry(self, task: str) -> dict[str, Any]:
        if task not in self.task_names:
            raise ZooError(f"task {task!r} is not in pool {self.name}; tasks are {self.task_names}")
        return self.manifest["tasks"][task]


_SPEC = re.compile(r"^zoo-(\d+|micro)(?:-s(\d+))?$")
_LM_SPEC = re.compile(r"^lm-zoo-(7|micro)$")


def _lm_zoo_pool_class() -> type:
    """:class:`spectral.checkpoints.hf_pool.HFPool` over the language zoo's folder, with a content fingerprint
    from its manifest (built deterministically from its seed and configuration), imported on first use."""
    from spectral.checkpoints.hf_pool import HFPool

    class LMZooPool(HFPool):
        """The language demo zoo ``lm-zoo-7`` (:mod:`spectral.zoo.lm`) as a pool."""

        def __init__(self, root: Path, name: str) -> None:
            from spectral.checkpoints.pool import read_pool_yaml

            spec = read_pool_yaml(root / "pool.yaml")
            spec.name = name
            super().__init__(spec)
            self.root = root

        def fingerprint(self) -> str:
            manifest = json.loads((self.root / "manifest.json").read_text())
            stable = {k: v for k, v in manifest.items() if "seconds" not in k}
            return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()

    return LMZooPool


def is_lm_zoo_spec(spec: str) -> bool:
    return bool(_LM_SPEC.match(spec.strip()))


def open_lm_zoo_pool(spec: str = "lm-zoo-7", *, cache_dir: str | Path | None = None, build: bool = True,
                     progress: Any = None) -> ModelPool:
    """``"lm-zoo-7"`` (or ``"lm-zoo-micro"``, the seconds-sized test zoo) → the language demo zoo as a pool,
    building it first when missing and ``build`` (``python -m spectral zoo build --family lm``)."""
    from spectral.zoo.lm import build_lm_zoo, is_lm_zoo_built, lm_zoo_root

    match = _LM_SPEC.match(spec.strip())
    if not match:
        raise ZooError(f"language zoo spec must be lm-zoo-7 or lm-zoo-micro; got {spec!r}")
    size = "full" if match.group(1) == "7" else "micro"
    root = lm_zoo_root(cache_dir, size=size)
    if build:
        build_lm_zoo(root, progress=progress, size=size)
    elif not is_lm_zoo_built(root):
        raise ZooError(f"{spec} is not built: python -m spectral zoo build --family lm")
    return _lm_zoo_pool_class()(root, spec.strip())


def open_zoo_pool(
    spec: str = "zoo-8",
    *,
    cache_dir: str | Path | None = None,
    build: bool = True,
    progress: Any = None,
    config: ZooConfig | None = None,
) -> ZooPool:
    """``"zoo-8"`` / ``"zoo-14"`` / ``"zoo-20"`` (``"zoo-8-s3"`` for seed 3; ``"zoo-micro"`` for the seconds-sized
    test zoo) → the pool, building what is missing when ``build`` (minutes on a CPU for the real zoo; see
    ``python -m spectral zoo build``). ``"lm-zoo-7"`` is the language demo zoo (:func:`open_lm_zoo_pool`)."""
    from spectral.zoo.lora import is_lora_zoo_spec, open_lora_zoo_pool

    if is_lora_zoo_spec(spec):  # LoRA adapters on the zoo's tower (spectral.zoo.lora)
        return open_lora_zoo_pool(spec, cache_dir=cache_dir, build=build, progress=progress)  # type: ignore[return-value]
    if is_lm_zoo_spec(spec):
        return open_lm_zoo_pool(spec, cache_dir=cache_dir, build=build, progress=progress)  # type: ignore[return-value]
    match = _SPEC.match(spec)
    if not match:
        raise ZooError(f"zoo pool spec must look like zoo-8, zoo-14, zoo-20, zoo-8-s1 or zoo-micro; got {spec!r}")
    seed = int(match.group(2) or 0)
    if match.group(1) == "micro":
        return ensure_zoo(None, seed=seed, cache_dir=cache_dir, build=build, progress=progress,
                          config=config or ZooConfig.micro())
    return ensure_zoo(int(match.group(1)), seed=seed, cache_dir=cache_dir, build=build, progress=progress,
                      config=config)


def ensure_zoo(
    num_tasks: int | None = 8,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    build: bool = True,
    progress: Any = None,
    config: ZooConfig | None = None,
    root: str | Path | None = None,
) -> ZooPool:
    """The zoo pool with ``num_tasks`` tasks; builds or completes it first when ``build`` (the app's first start)."""
    config = config or ZooConfig()
    root = Path(root) if root is not None else zoo_root(cache_dir, config, seed)
    if build:
        build_zoo(num_tasks, seed=seed, config=config, root=root, progress=progress)
    return ZooPool(root, config.suite(num_tasks))
