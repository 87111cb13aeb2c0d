"""MagMax (Marczak et al., ECCV 2024): per parameter entry, the task-vector entry of largest magnitude."""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from spectral.methods.base import ALPHA, Method, Param, as_float

Progress = Callable[[int, int, str], None]


def max_magnitude(stacked: Tensor) -> Tensor:
    """τ_max of one key: for every entry, Δ_t[i] of the task with the largest |Δ_t[i]|; ties go to the earlier
    task (``torch.argmax`` returns the first maximal index)."""
    x = as_float(stacked)
    index = x.abs().argmax(0, keepdim=True)
    return x.gather(0, index).squeeze(0)


def magmax(task_vectors: Mapping[str, Tensor], *, alpha: float = 0.5, progress: Progress | None = None
           ) -> dict[str, Tensor]:
    """MagMax (Marczak et al. 2024, Eq. 2-3): θ₀ + α·τ_max, τ_max[i] = Δ_{t*}[i], t* = argmax_t |Δ_t[i]|.

    Every parameter (matrix or not) is merged the same way, key by key."""
    keys = list(task_vectors)
    merged: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        merged[key] = alpha * max_magnitude(task_vectors[key])
        if progress:
            progress(i + 1, len(keys), f"MagMax: {key}")
    return merged


MAGMAX = Method(
    name="magmax",
    display_name="MagMax",
    paper="Marczak et al. 2024, MagMax: Leveraging Model Merging for Seamless Continual Learning (ECCV)",
    # The paper merges with a scaling factor of 0.5; α is chosen on validation in our tables.
    params=(Param(**{**ALPHA.__dict__, "default": 0.5}),),
    model_fn=magmax,
    description="Per entry, keep the task-vector value of largest magnitude (ties: earlier task), scaled by α.",
)
