"""Zero-shot classification heads from a CLIP text tower (Radford et al. 2021; the task-vector protocol of
Ilharco et al. 2023, which the TSV, Iso and AdaRank papers follow: the head is built once from class-name
prompts and frozen while the image tower is fine-tuned).

One function serves the demo zoo and real checkpoints: it only uses ``encode_text`` of an open_clip CLIP and an
open_clip tokenizer.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from spectral.linalg import resolve_device

Template = str | Callable[[str], str]


def render_prompt(template: Template, class_name: str) -> str:
    """A template is a format string with ``{}`` (or ``{c}``) or a callable, as in the task_vectors templates."""
    if callable(template):
        return template(class_name)
    if "{c}" in template:
        return template.format(c=class_name)
    return template.format(class_name)


@torch.no_grad()
def zeroshot_head(
    clip_model: Any,
    tokenizer: Callable[[list[str]], Tensor],
    class_names: Sequence[str],
    templates: Sequence[Template],
    device: str | torch.device = "cpu",
    *,
    batch_size: int = 256,
) -> Tensor:
    """Zero-shot head (C, d): per class, the mean of the L2-normalised text embeddings of every prompt, then
    L2-normalised again (the CLIP / task_vectors recipe). Returned in float32 on the CPU.

    ``clip_model`` is any open_clip CLIP (``encode_text``); it is switched to eval mode for the call and put back.
    """
    if not class_names:
        raise ValueError("zeroshot_head needs at least one class name")
    if not templates:
        raise ValueError("zeroshot_head needs at least one prompt template")
    dev = resolve_device(device)
    prompts = [render_prompt(t, c) for c in class_names for t in templates]
    was_training = bool(getattr(clip_model, "training", False))
    clip_model.eval()
    try:
        feats = []
        for start in range(0, len(prompts), batch_size):
            tokens = tokenizer(prompts[start : start + batch_size]).to(dev)
            feats.append(F.normalize(clip_model.encode_text(tokens).float(), dim=-1).cpu())
    finally:
        if was_training:
            clip_model.train()
    per_prompt = torch.cat(feats).view(len(class_names), len(templates), -1)
    return F.normalize(per_prompt.mean(1), dim=-1).contiguous()
