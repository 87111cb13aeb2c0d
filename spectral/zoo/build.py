"""Build the demo zoo once into ``<cache>/zoo/`` and reuse it afterwards.

Layout of one zoo (``<cache>/zoo/<config name>-seed<seed>/``)::

    manifest.json             model config, zoo config, seeds, task and class names, templates, accuracies, hashes
    base.safetensors          the pre-trained CLIP (image and text towers, open_clip state-dict keys)
    tasks/<task>.safetensors  fine-tuned image tower, canonical ``visual.*`` keys
    heads/<task>.safetensors  the task's frozen zero-shot head ("head": (C, d), rows L2-normalised)
    data/<task>.safetensors   val and test splits (uint8 images, int64 labels); train is regenerated from its seed

The pre-trained model is shared by every suite (its corpus covers all 20 tasks), and each task is fine-tuned
from its own derived seed, so the 8-task zoo is exactly the first 8 tasks of the 14- and 20-task zoos and growing
a zoo only fine-tunes the new tasks. Every file is written atomically; the manifest is rewritten after each task,
so an interrupted build resumes. A lock file serialises two processes building the same zoo.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import load_file

from spectral.cache import default_cache_dir
from spectral.io import atomic_save_tensors, atomic_write_bytes
from spectral.errors import SpectralError
from spectral.eval.heads import zeroshot_head
from spectral.pool import add_visual_prefix
from spectral.zoo import train as T
from spectral.zoo.model import ModelSpec, create_clip, get_tokenizer
from spectral.zoo.tasks import ALL_TASKS, SUITES, get_task

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: bump when task renderers or the training recipe change in a way that changes the zoo's content
ZOO_VERSION = "2"
MANIFEST = "manifest.json"


class ZooError(SpectralError):
    """The demo zoo cannot be built or read."""


def _noop(i: int, n: int, text: str) -> None:
    return None


@dataclass(frozen=True)
class ZooConfig:
    """Everything that determines the zoo's content, besides the seed."""

    name: str = "default"
    model: ModelSpec = field(default_factory=ModelSpec)
    train: T.TrainConfig = field(default_factory=T.TrainConfig)
    n_train: int = 8192
    n_val: int = 128
    n_test: int = 256
    #: nuisance level of the tasks' own train/val/test data (pre-training sees [0, train.pretrain_nuisance])
    task_nuisance: float = 0.7
    #: tasks whose images and captions make up the pre-training corpus (all zoo tasks by default)
    pretrain_tasks: tuple[str, ...] = ALL_TASKS
    #: the task order of the suites (a suite of T tasks is the first T)
    task_order: tuple[str, ...] = ALL_TASKS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "model": self.model.to_dict(), "train": asdict(self.train), "n_train": self.n_train,
            "n_val": self.n_val, "n_test": self.n_test, "task_nuisance": self.task_nuisance,
            "pretrain_tasks": list(self.pretrain_tasks),
            "task_order": list(self.task_order),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ZooConfig":
        return cls(
            name=data["name"], model=ModelSpec.from_dict(data["model"]), train=T.TrainConfig(**data["train"]),
            n_train=data["n_train"], n_val=data["n_val"], n_test=data["n_test"],
            task_nuisance=data.get("task_nuisance", 1.0),
            pretrain_tasks=tuple(data["pretrain_tasks"]), task_order=tuple(data["task_order"]),
        )

    def fingerprint(self) -> str:
        """Hash of the configuration, :data:`ZOO_VERSION` and the source of everything that renders and trains
        the zoo, so that a zoo built by older code is rebuilt rather than silently reused."""
        payload = json.dumps({"zoo_version": ZOO_VERSION, "source": _source_hash(), **self.to_dict()},
                             sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    @classmethod
    def micro(cls) -> "ZooConfig":
        """A zoo that builds in seconds, for tests: 4 quickly learnt tasks, a 2-block width-32 ViT, short training."""
        tasks = ("colors", "scenes", "aerial", "digits")
        return cls(
            name="micro",
            model=ModelSpec(width=32, layers=2, head_width=16, embed_dim=32, text_width=32, text_layers=1,
                            text_heads=2, context_length=20),
            train=T.TrainConfig(pretrain_images_per_task=512, pretrain_nuisance=0.35, pretrain_steps=120,
                                pretrain_batch=128, pretrain_lr=3e-3, finetune_steps=40, finetune_batch=64,
                                finetune_lr=2e-3, caption_confusion=0.0),
            n_train=256, n_val=64, n_test=128, task_nuisance=0.7, pretrain_tasks=tasks, task_order=tasks,
        )

    def suite(self, num_tasks: int | None) -> tuple[str, ...]:
        if num_tasks is None:
            return self.task_order
        if self.task_order == ALL_TASKS:
            if num_tasks not in SUITES:
                raise ZooError(f"the zoo has suites of {sorted(SUITES)} tasks, not {num_tasks}")
            return SUITES[num_tasks]
        if not 1 <= num_tasks <= len(self.task_order):
            raise ZooError(f"zoo {self.name!r} has {len(self.task_order)} tasks; asked for {num_tasks}")
        return self.task_order[:num_tasks]


_SOURCE_HASH: str | None = None


def _source_hash() -> str:
    """SHA-256 of the zoo's task renderers, font, model and training code (computed once per process)."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for name in ("font.py", "render.py", "tasks.py", "model.py", "train.py"):
            h.update(name.encode())
            h.update((here / name).read_bytes())
        _SOURCE_HASH = h.hexdigest()
    return _SOURCE_HASH


def zoo_root(cache_dir: str | Path | None = None, config: ZooConfig | None = None, seed: int = 0) -> Path:
    config = config or ZooConfig()
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "zoo" / f"{config.name}-seed{seed}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        log.warning("zoo manifest %s is unreadable (%s); the zoo will be rebuilt", path, err)
        return None


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(Path(root) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=False).encode())


def build_threads() -> int:
    """Threads the build runs with: ``$SPECTRAL_ZOO_THREADS`` or 1.

    One thread keeps the zoo bit-identical whatever the machine's core count (float reductions are split
    differently across threads), and the zoo's matrices are too small to gain from more: on a shared 2-core
    machine a second OpenMP thread made each training step several times slower (threads waiting on each
    other while other processes hold the cores)."""
    return max(1, int(os.environ.get("SPECTRAL_ZOO_THREADS", "1")))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no inter-process lock
        yield
        return
    with open(root / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> str:
    atomic_save_tensors(path, {k: v.detach().contiguous() for k, v in tensors.items()}, meta)
    return sha256_file(path)


def load_clip(root: Path, manifest: dict[str, Any]) -> torch.nn.Module:
    """The zoo's pre-trained CLIP (both towers), eval mode, CPU."""
    spec = ModelSpec.from_dict(manifest["config"]["model"])
    model = create_clip(spec)
    model.load_state_dict(load_file(str(Path(root) / manifest["base"]["file"])), strict=True)
    return model.eval()


def is_built(num_tasks: int | None = 8, *, seed: int = 0, cache_dir: str | Path | None = None,
             config: ZooConfig | None = None) -> bool:
    """Whether the zoo with these tasks is on disk (and matches ``config``), without building anything."""
    config = config or ZooConfig()
    manifest = read_manifest(zoo_root(cache_dir, config, seed))
    return (
        manifest is not None
        and manifest.get("config_hash") == config.fingerprint()
        and all(t in manifest.get("tasks", {}) for t in config.suite(num_tasks))
    )


def build_zoo(
    num_tasks: int | None = 8,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    config: ZooConfig | None = None,
    root: str | Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> Path:
    """Build (or complete) the zoo with the first ``num_tasks`` tasks; returns its folder. Reuses what exists.

    ``root`` overrides the folder (default ``<cache>/zoo/<config.name>-seed<seed>``, cache from
    ``$SPECTRAL_CACHE_DIR`` or ``cache/``). ``force`` rebuilds from scratch.
    """
    config = config or ZooConfig()
    progress = progress or _noop
    root = Path(root) if root is not None else zoo_root(cache_dir, config, seed)
    tasks = config.suite(num_tasks)
    with _build_lock(root), _torch_threads(build_threads()):
        manifest = None if force else read_manifest(root)
        stale = manifest is not None and (
            manifest.get("config_hash") != config.fingerprint() or manifest.get("seed") != seed
        )
        if stale:
            log.info("zoo at %s was built with another configuration or seed: rebuilding", root)
            manifest = None
        if manifest is None:
            for sub in ("tasks", "heads", "data"):
                shutil.rmtree(root / sub, ignore_errors=True)
            (root / "base.safetensors").unlink(missing_ok=True)
            manifest = _new_manifest(config, seed)
        todo = [t for t in tasks if t not in manifest["tasks"]]
        need_base = "base" not in manifest
        if not todo and not need_base:
            progress(1, 1, "zoo ready")
            return root
        # progress units: pre-training steps + (fine-tuning steps + 10 for data and evaluation) per task
        per_task = config.train.finetune_steps + 10
        total = (config.train.pretrain_steps + 20 if need_base else 0) + per_task * len(todo)
        done = 0

        def sub(offset: int, scale: float = 1.0) -> Progress:
            return lambda i, n, text: progress(offset + int(i * scale), total, text)

        spec = config.model
        tokenizer = get_tokenizer(spec)
        if need_base:
            t0 = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(T.derive_seed(seed, "init") % (1 << 31))
                model = create_clip(spec)
            pre_tasks = [get_task(t) for t in config.pretrain_tasks]
            corpus = T.build_corpus(pre_tasks, tokenizer, config.train, seed, spec.image_size,
                                    sub(0, 20 / max(1, len(pre_tasks))))
            stats = T.pretrain(model, corpus, config.train, seed, sub(20))
            del corpus
            sha = _save(root / "base.safetensors", model.state_dict(), {"format": "open_clip CLIP state dict"})
            manifest["base"] = {"file": "base.safetensors", "sha256": sha, "pretrain": stats,
                                "seconds": round(time.perf_counter() - t0, 2)}
            write_manifest(root, manifest)
            done = config.train.pretrain_steps + 20
        else:
            model = load_clip(root, manifest)
        model.eval()
        logit_scale = float(model.logit_scale.detach().exp())
        base_visual = model.visual
        for task_name in todo:
            t0 = time.perf_counter()
            entry = _build_task(root, config, seed, task_name, model, tokenizer, base_visual, logit_scale,
                                sub(done))
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            manifest["tasks"][task_name] = entry
            manifest["task_order"] = [t for t in config.task_order if t in manifest["tasks"]]
            write_manifest(root, manifest)
            done += per_task
            log.info("zoo task %s: zero-shot %.3f, fine-tuned %.3f (test)", task_name,
                     entry["accuracy"]["zeroshot"]["test"], entry["accuracy"]["finetuned"]["test"])
        progress(total, total, "zoo ready")
    return root


def _new_manifest(config: ZooConfig, seed: int) -> dict[str, Any]:
    return {
        "format": "spectral-zoo",
        "zoo_version": ZOO_VERSION,
        "seed": seed,
        "config": config.to_dict(),
        "config_hash": config.fingerprint(),
        "model": {"open_clip_name": config.model.name, "open_clip_config": config.model.open_clip_config()},
        "torch_version": torch.__version__,
        "task_order": [],
        "tasks": {},
    }


def _build_task(
    root: Path, config: ZooConfig, seed: int, name: str, model: torch.nn.Module, tokenizer: Any,
    base_visual: torch.nn.Module, logit_scale: float, progress: Progress,
) -> dict[str, Any]:
    task = get_task(name)
    size = config.model.image_size
    progress(0, 1, f"{name}: data")
    head = zeroshot_head(model, tokenizer, task.classes, task.templates)
    splits = {
        split: T.generate_split(task, n, T.derive_seed(seed, "data", name, split), size=size,
                                nuisance=config.task_nuisance)
        for split, n in (("val", config.n_val), ("test", config.n_test))
    }
    x_train, y_train = train_split(config, seed, name)
    data_sha = _save(root / "data" / f"{name}.safetensors",
                     {f"{s}_{kind}": t for s, (x, y) in splits.items() for kind, t in (("images", x), ("labels", y))})
    head_sha = _save(root / "heads" / f"{name}.safetensors", {"head": head})
    zs = {s: T.accuracy(base_visual, head, x, y) for s, (x, y) in splits.items()}
    progress(5, 1, f"{name}: fine-tuning")
    visual = copy.deepcopy(base_visual)
    ft_seed = T.derive_seed(seed, "finetune", name)
    losses = T.finetune(visual, head, logit_scale, x_train, y_train, config.train, ft_seed,
                        lambda i, n, text: progress(5 + i, 1, f"{name}: {text}"))
    ft = {s: T.accuracy(visual, head, x, y) for s, (x, y) in splits.items()}
    state = add_visual_prefix(visual.state_dict())
    # one metadata key: safetensors writes its metadata map in no fixed order, and the file hash must be stable
    ckpt_sha = _save(root / "tasks" / f"{name}.safetensors", state,
                     {"spectral": json.dumps({"task": name, "format": "open_clip image tower, visual.* keys"})})
    progress(config.train.finetune_steps + 10, 1, f"{name}: done")
    return {
        "analogue": task.analogue,
        "group": task.group,
        "classes": list(task.classes),
        "templates": list(task.templates),
        "description": task.description,
        "checkpoint": f"tasks/{name}.safetensors",
        "checkpoint_sha256": ckpt_sha,
        "head": f"heads/{name}.safetensors",
        "head_sha256": head_sha,
        "data": f"data/{name}.safetensors",
        "data_sha256": data_sha,
        "sizes": {"train": config.n_train, "val": config.n_val, "test": config.n_test},
        "nuisance": config.task_nuisance,
        "seeds": {"finetune": ft_seed, "train": T.derive_seed(seed, "data", name, "train"),
                  **{s: T.derive_seed(seed, "data", name, s) for s in ("val", "test")}},
        "accuracy": {"zeroshot": zs, "finetuned": ft},
        "finetune_final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
    }


def train_split(config: ZooConfig, seed: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The train split of a task (regenerated deterministically; not stored)."""
    return T.generate_split(get_task(name), config.n_train, T.derive_seed(seed, "data", name, "train"),
                            size=config.model.image_size, nuisance=config.task_nuisance)


_MICRO_BUILDS: dict[tuple[int, int | None], Path] = {}


def build_micro_zoo(parent: str | Path, *, seed: int = 0, num_tasks: int | None = None,
                    progress: Progress | None = None) -> Path:
    """Build the seconds-sized :meth:`ZooConfig.micro` zoo under ``parent`` (for tests and quick demos).

    Memoised per process: a second call (e.g. from another test folder's fixture) returns the first build's
    folder as long as it still exists."""
    key = (seed, num_tasks)
    done = _MICRO_BUILDS.get(key)
    if done is not None and (done / MANIFEST).is_file():
        return done
    root = Path(parent) / f"micro-seed{seed}"
    build_zoo(num_tasks, seed=seed, config=ZooConfig.micro(), root=root, progress=progress)
    _MICRO_BUILDS[key] = root
    return root
