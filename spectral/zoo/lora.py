"""The LoRA demo zoo: PEFT LoRA adapters on the demo zoo's image tower, one per task, trained here.

``lora-zoo-8`` (``lora-zoo-micro`` for tests) opens the CLIP zoo of the same size, then trains one adapter per task
on its tower with the zero-shot head frozen (the zoo's fine-tuning protocol, :func:`spectral.zoo.train.finetune`),
through ``peft.get_peft_model``, and saves each with ``save_pretrained`` — real PEFT folders
(``adapter_config.json`` + ``adapter_model.safetensors``). The adapters target the MLP projections ``c_fc`` and
``c_proj`` of every block (open_clip's fused attention, ``nn.MultiheadAttention``, reads its weights directly, so a
LoRA wrapper there would not change the forward pass). Ranks alternate 4 and 8, and every third task adapts
``c_fc`` only, so the pool has mixed ranks and target modules.

Layout: ``<zoo root>/lora-adapters/<task>/`` and ``manifest.json`` (zoo fingerprint, ranks, accuracies, seconds).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import torch

from spectral.io import atomic_folder, atomic_write_bytes
from spectral.pool import ModelPool

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

LORA_ZOO_VERSION = "1"
#: training steps of each adapter (the zoo's full fine-tunes take 150; LoRA at lr 5e-3 learns most of it in 50).
#: lora-zoo-8's eight adapters took 378 s on the shared 2-core machine under heavy load (docs/lora-llms.md)
DEFAULT_STEPS = 50
_SPEC = re.compile(r"^lora-zoo-(\d+|micro)$")


def _noop(i: int, n: int, text: str) -> None:
    return None


def is_lora_zoo_spec(spec: str) -> bool:
    return bool(_SPEC.match(spec.strip()))


def adapter_plan(tasks: list[str]) -> dict[str, dict[str, Any]]:
    """Rank and target modules of each task's adapter (mixed ranks and targets, module docstring)."""
    plan = {}
    for i, task in enumerate(tasks):
        r = 4 if i % 2 == 0 else 8
        targets = ["c_fc"] if i % 3 == 2 else ["c_fc", "c_proj"]
        plan[task] = {"r": r, "lora_alpha": 2 * r, "target_modules": targets}
    return plan


def build_lora_zoo(zoo: Any, root: Path, *, progress: Progress | None = None, steps: int | None = None,
                   lr: float = 5e-3) -> dict[str, Any]:
    """Train and save one adapter per task of ``zoo`` (a :class:`~spectral.zoo.pool.ZooPool`) under ``root``,
    unless ``root/manifest.json`` already records this zoo; returns the manifest."""
    from peft import LoraConfig, get_peft_model

    from spectral.zoo import train as T

    progress = progress or _noop
    manifest_file = root / "manifest.json"
    fingerprint = zoo.fingerprint()
    steps = min(DEFAULT_STEPS, zoo.config.train.finetune_steps) if steps is None else steps
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("zoo") == fingerprint and manifest.get("version") == LORA_ZOO_VERSION and manifest.get(
                "steps") == steps and manifest.get("lr") == lr and all(
                (root / t / "adapter_model.safetensors").is_file() for t in zoo.task_names):
            return manifest
    root.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(zoo.config.train, finetune_lr=lr, finetune_steps=steps)
    plan = adapter_plan(list(zoo.task_names))
    base = {k[len("visual."):]: v for k, v in zoo.base_state_dict().items()}
    logit_scale = float(zoo.clip_model().logit_scale.detach().exp())
    started = time.perf_counter()
    accuracies: dict[str, dict[str, float]] = {}
    n = len(zoo.task_names)
    for i, task in enumerate(zoo.task_names):
        progress(i, n, f"LoRA adapter for {task}")
        tower = zoo.build_image_encoder()
        tower.load_state_dict(base, strict=True)
        settings = plan[task]
        torch.manual_seed(T.derive_seed(zoo.seed, "lora", task) % (2**31))
        model = get_peft_model(tower, LoraConfig(r=settings["r"], lora_alpha=settings["lora_alpha"],
                                                 target_modules=settings["target_modules"], lora_dropout=0.0))
        images, labels = zoo.dataset(task, "train").images, zoo.dataset(task, "train").labels
        head = zoo.head(task)
        with torch.enable_grad():
            T.finetune(model, head, logit_scale, images, labels, cfg, T.derive_seed(zoo.seed, "lora-ft", task))
        test = zoo.dataset(task, "test")
        accuracies[task] = {"lora": T.accuracy(model, head, test.images, test.labels)}
        with atomic_folder(root / task) as tmp:  # never a half-written adapter
            model.save_pretrained(str(tmp))
    manifest = {"format": "spectral-lora-zoo", "version": LORA_ZOO_VERSION, "zoo": fingerprint,
                "tasks": list(zoo.task_names), "adapters": plan, "steps": cfg.finetune_steps, "lr": lr,
                "accuracy": accuracies, "train_seconds": round(time.perf_counter() - started, 1)}
    atomic_write_bytes(manifest_file, json.dumps(manifest, indent=2).encode())
    progress(n, n, "LoRA adapters ready")
    return manifest


def open_lora_zoo_pool(spec: str = "lora-zoo-8", *, cache_dir: str | Path | None = None, build: bool = True,
                       progress: Progress | None = None) -> ModelPool:
    """``"lora-zoo-8"`` / ``"lora-zoo-micro"`` → a :class:`~spectral.checkpoints.lora.LoRAPool` of adapters on the
    demo zoo of that size (the zoo and the adapters built first when missing and ``build``)."""
    from spectral.checkpoints.lora import make_lora_pool
    from spectral.zoo.build import ZooError
    from spectral.zoo.pool import open_zoo_pool

    match = _SPEC.match(spec.strip())
    if not match:
        raise ZooError(f"LoRA zoo spec must look like lora-zoo-8 or lora-zoo-micro; got {spec!r}")
    zoo = open_zoo_pool(f"zoo-{match.group(1)}", cache_dir=cache_dir, build=build, progress=progress)
    root = Path(zoo.root) / "lora-adapters"
    if build:
        build_lora_zoo(zoo, root, progress=progress)
    elif not (root / "manifest.json").is_file():
        raise ZooError(f"{spec} is not built: open it once with building allowed")
    return make_lora_pool(zoo, {t: root / t for t in zoo.task_names}, name=spec.strip())
