"""Data generation, contrastive pre-training and per-task fine-tuning of the zoo's CLIP.

- :func:`generate_split` renders a task's split deterministically from a seed (balanced labels).
- :func:`pretrain` trains the whole CLIP contrastively (Radford et al. 2021) on generated image–caption pairs
  from every zoo task, rendered with milder nuisance than the tasks' own data. Captions are prompts of the
  image's class; pairs whose captions name the same concept are all positives (soft targets), because a batch of
  synthetic captions repeats itself.
- :func:`finetune` trains the image tower on one task's train split with the zero-shot head frozen
  (Ilharco et al. 2023, the protocol behind every task vector in the TSV/Iso/AdaRank papers).

Everything is deterministic: explicit ``torch.Generator`` objects, per-task seeds derived by hashing.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spectral.zoo.model import preprocess, to_uint8
from spectral.zoo.tasks import GENERIC_TEMPLATES, TaskSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def _noop(i: int, n: int, text: str) -> None:
    return None


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and names (stable across processes and Python versions)."""
    text = "|".join([str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def balanced_labels(n: int, num_classes: int, g: torch.Generator) -> Tensor:
    labels = torch.arange(n) % num_classes
    return labels[torch.randperm(n, generator=g)]


def generate_split(
    task: TaskSpec, n: int, seed: int, *, nuisance: float = 1.0, size: int = 32, chunk: int = 512
) -> tuple[Tensor, Tensor]:
    """``n`` images of ``task`` as uint8 (n, 3, size, size) and int64 labels, a pure function of the arguments."""
    g = generator(seed)
    labels = balanced_labels(n, task.num_classes, g)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        images[sl] = to_uint8(task.render(labels[sl], g, nuisance, size))
    return images, labels


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of pre-training and fine-tuning (part of the zoo's identity: they go in the manifest)."""

    pretrain_images_per_task: int = 1024
    pretrain_nuisance: float = 0.7  # pre-training renders at nuisance levels evenly spaced in [0, this]
    pretrain_steps: int = 400
    pretrain_batch: int = 128
    pretrain_lr: float = 2e-3
    pretrain_weight_decay: float = 0.05
    finetune_steps: int = 150
    finetune_batch: int = 64
    finetune_lr: float = 5e-4
    finetune_weight_decay: float = 0.01
    warmup_frac: float = 0.1
    #: fraction of pre-training images captioned with a fixed other class of their task (a derangement per task),
    #: like web captions that name a related thing: the image features still separate the classes, but their
    #: alignment with the class names (zero-shot) is weak, so fine-tuning with the frozen head is a rotation
    caption_confusion: float = 0.5


def _cosine(step: int, total: int, warmup_frac: float) -> float:
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@dataclass
class PretrainCorpus:
    images: Tensor  # uint8 (N, 3, H, W)
    caption_index: Tensor  # (N,) first caption of the image's class in ``tokens``
    caption_count: Tensor  # (N,) number of captions of that class
    concept: Tensor  # (N,) concept id
    tokens: Tensor  # (num_captions, context_length)


def build_corpus(
    tasks: Sequence[TaskSpec], tokenizer: Any, cfg: TrainConfig, seed: int, size: int, progress: Progress = _noop
) -> PretrainCorpus:
    """Image–caption pairs from every task, at nuisance levels spread over [0, cfg.pretrain_nuisance]."""
    captions: list[str] = []
    first: dict[tuple[str, int], tuple[int, int]] = {}
    concept_ids: dict[str, int] = {}
    for task in tasks:
        for c, name in enumerate(task.classes):
            texts = [t.format(name) for t in (*task.templates, *GENERIC_TEMPLATES)]
            first[(task.name, c)] = (len(captions), len(texts))
            captions.extend(texts)
            concept_ids.setdefault(task.concept_ids()[c], len(concept_ids))
    tokens = tokenizer(captions)
    imgs, cap_idx, cap_cnt, concept = [], [], [], []
    levels = 4
    per_level = cfg.pretrain_images_per_task // levels
    for i, task in enumerate(tasks):
        progress(i, len(tasks), f"pre-training data: {task.name}")
        g = generator(derive_seed(seed, "caption-confusion", task.name))
        cycle = torch.randperm(task.num_classes, generator=g)
        confused_with = torch.empty_like(cycle)
        confused_with[cycle] = cycle.roll(-1)  # one cycle through all classes: no class is confused with itself
        for lvl in range(levels):
            nz = cfg.pretrain_nuisance * lvl / (levels - 1)
            x, y = generate_split(task, per_level, derive_seed(seed, "pretrain", task.name, lvl), nuisance=nz,
                                  size=size)
            if cfg.caption_confusion > 0 and task.num_classes > 1:
                y = torch.where(torch.rand(y.shape[0], generator=g) < cfg.caption_confusion, confused_with[y], y)
            imgs.append(x)
            info = torch.tensor([first[(task.name, int(c))] for c in range(task.num_classes)])
            cap_idx.append(info[y, 0])
            cap_cnt.append(info[y, 1])
            cid = torch.tensor([concept_ids[task.concept_ids()[c]] for c in range(task.num_classes)])
            concept.append(cid[y])
    progress(len(tasks), len(tasks), "pre-training data ready")
    return PretrainCorpus(torch.cat(imgs), torch.cat(cap_idx), torch.cat(cap_cnt), torch.cat(concept), tokens)


def contrastive_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor, concept: Tensor) -> Tensor:
    """Symmetric CLIP loss with soft targets: every pair in the batch whose captions share a concept is a positive."""
    img = F.normalize(image_features, dim=-1)
    txt = F.normalize(text_features, dim=-1)
    logits = logit_scale * img @ txt.T
    pos = (concept[:, None] == concept[None, :]).float()
    target = pos / pos.sum(1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def pretrain(
    model: nn.Module, corpus: PretrainCorpus, cfg: TrainConfig, seed: int, progress: Progress = _noop
) -> dict[str, float]:
    """Contrastive pre-training of the whole CLIP in place; returns a few statistics for the manifest."""
    g = generator(derive_seed(seed, "pretrain-batches"))
    model.train()
    # The token embedding (49408 × width, most rows never used by the zoo's captions) stays at its random
    # initialisation: updating it would be most of the optimiser's work per step and teaches nothing that the
    # text transformer on top cannot learn.
    model.token_embedding.weight.requires_grad_(False)
    opt = torch.optim.AdamW(_param_groups(model, cfg.pretrain_weight_decay), lr=cfg.pretrain_lr, betas=(0.9, 0.98))
    n = corpus.images.shape[0]
    losses: list[float] = []
    for step in range(cfg.pretrain_steps):
        for group in opt.param_groups:
            group["lr"] = cfg.pretrain_lr * _cosine(step, cfg.pretrain_steps, cfg.warmup_frac)
        idx = torch.randint(0, n, (cfg.pretrain_batch,), generator=g)
        pick = (torch.rand(cfg.pretrain_batch, generator=g) * corpus.caption_count[idx]).long()
        tokens = corpus.tokens[corpus.caption_index[idx] + pick]
        images = preprocess(corpus.images[idx])
        img_f = model.encode_image(images)
        txt_f = model.encode_text(tokens)
        loss = contrastive_loss(img_f, txt_f, model.logit_scale.exp(), corpus.concept[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == cfg.pretrain_steps - 1:
            progress(step + 1, cfg.pretrain_steps, f"pre-training: loss {sum(losses[-10:]) / len(losses[-10:]):.3f}")
    model.token_embedding.weight.requires_grad_(True)
    model.eval()
    tail = losses[-20:]
    return {"final_loss": sum(tail) / len(tail), "first_loss": losses[0] if losses else math.nan,
            "logit_scale": float(model.logit_scale.detach().exp())}


def finetune(
    visual: nn.Module,
    head: Tensor,
    logit_scale: float,
    images: Tensor,
    labels: Tensor,
    cfg: TrainConfig,
    seed: int,
    progress: Progress = _noop,
) -> list[float]:
    """Fine-tune the image tower in place on (uint8 images, labels) with the head frozen; returns the losses."""
    g = generator(seed)
    visual.train()
    opt = torch.optim.AdamW(_param_groups(visual, cfg.finetune_weight_decay), lr=cfg.finetune_lr)
    head = head.detach().clone()
    n = images.shape[0]
    losses: list[float] = []
    order = torch.randperm(n, generator=g)
    pos = 0
    for step in range(cfg.finetune_steps):
        for group in opt.param_groups:
            group["lr"] = cfg.finetune_lr * _cosine(step, cfg.finetune_steps, cfg.warmup_frac)
        if pos + cfg.finetune_batch > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos : pos + cfg.finetune_batch]
        pos += cfg.finetune_batch
        feats = F.normalize(visual(preprocess(images[idx])), dim=-1)
        loss = F.cross_entropy(logit_scale * feats @ head.T, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == cfg.finetune_steps - 1:
            progress(step + 1, cfg.finetune_steps, f"loss {losses[-1]:.3f}")
    visual.eval()
    return losses


@torch.inference_mode()
def predict(visual: nn.Module, head: Tensor, images: Tensor, batch_size: int = 1024) -> Tensor:
    """Predicted class per image (uint8 or preprocessed float images)."""
    was_training = visual.training
    visual.eval()
    preds = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        x = preprocess(x) if x.dtype == torch.uint8 else x
        preds.append((visual(x) @ head.T).argmax(1))
    if was_training:
        visual.train()
    return torch.cat(preds)


def accuracy(visual: nn.Module, head: Tensor, images: Tensor, labels: Tensor) -> float:
    return float((predict(visual, head, images) == labels).float().mean())
