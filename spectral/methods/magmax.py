"""MagMax (Marczak et al., ECCV 2024): per parameter entry, the task-vector entry of largest magnitude."""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from spectral.errors import ParameterError
from spectral.methods.base import ALPHA, Method, Param, as_float

Progress = Callable[[int, int, str], None]


TIE_BREAKS = ("last", "first")


def max_magnitude(stacked: Tensor, tie_break: str = "last") -> Tensor:
    """τ_max of one key: for every entry, Δ_t[i] of the task with the largest |Δ_t[i]|.

    Entries of equal magnitude (e.g. +x and −x, common in bf16 checkpoints) go to the later task with
    ``tie_break="last"``, as the authors' ``merge_max_abs`` (a running ``>=`` fold over the tasks) and FusionBench
    do, or to the earlier one with ``"first"``."""
    if tie_break not in TIE_BREAKS:
        raise ParameterError(f"magmax: tie_break must be one of {list(TIE_BREAKS)}, got {tie_break!r}")
    x = as_float(stacked)
    mag = x.abs()
    if tie_break == "last":  # the last maximal index: argmax of the task-reversed stack
        index = (x.shape[0] - 1) - mag.flip(0).argmax(0, keepdim=True)
    else:  # torch.argmax returns the first maximal index
        index = mag.argmax(0, keepdim=True)
    return x.gather(0, index).squeeze(0)


def magmax(task_vectors: Mapping[str, Tensor], *, alpha: float = 0.5, tie_break: str = "last",
           progress: Progress | None = None) -> dict[str, Tensor]:
    """MagMax (Marczak et al. 2024, Eq. 2-3): θ₀ + α·τ_max, τ_max[i] = Δ_{t*}[i], t* = argmax_t |Δ_t[i]|.

    Every parameter (matrix or not) is merged the same way, key by key."""
    keys = list(task_vectors)
    merged: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        merged[key] = alpha * max_magnitude(task_vectors[key], tie_break)
        if progress:
            progress(i + 1, len(keys), f"MagMax: {key}")
    return merged


MAGMAX = Method(
    name="magmax",
    display_name="MagMax",
    paper="Marczak et al. 2024, MagMax: Leveraging Model Merging for Seamless Continual Learning (ECCV)",
    # The paper merges with a scaling factor of 0.5; α is chosen on validation in our tables.
    params=(
        Param(**{**ALPHA.__dict__, "default": 0.5}),
        Param("tie_break", "last", "choice", choices=TIE_BREAKS, label="equal magnitudes go to",
              help="'last': the later task, as the authors' code and FusionBench; 'first': the earlier task."),
    ),
    model_fn=magmax,
    description="Per entry, keep the task-vector value of largest magnitude (ties: later task), scaled by α.",
)
