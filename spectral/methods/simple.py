"""Weight averaging and Task Arithmetic: the two baselines every paper compares against."""
from __future__ import annotations

from torch import Tensor

from spectral.methods.base import ALPHA, LayerFactors, Method, Param, as_float


def weight_average(layer: LayerFactors, *, alpha: float = 1.0) -> Tensor:
    """Weight averaging (Wortsman et al. 2022): mean_t Δ_t; alpha is ignored (docs/contributing.md, "Math conventions")."""
    return as_float(layer.task_matrices).mean(0)


def task_arithmetic(layer: LayerFactors, *, alpha: float = 0.3) -> Tensor:
    """Task Arithmetic (Ilharco et al. 2023; AdaRank Eq. 1): alpha · Σ_t Δ_t."""
    return alpha * as_float(layer.task_matrices).sum(0)


WEIGHT_AVERAGE = Method(
    name="weight_average",
    display_name="Weight averaging",
    paper="Wortsman et al. 2022 (model soups)",
    params=(),
    layer_fn=weight_average,
    non_matrix="mean",
    alpha_form="none",
    description="θ₀ + mean_t Δ_t: every parameter averaged over the fine-tuned models.",
)

TASK_ARITHMETIC = Method(
    name="task_arithmetic",
    display_name="Task Arithmetic",
    paper="Ilharco et al. 2023",
    # λ = 0.3 is the best-performing scaling the task-vector papers report for 8 ViT tasks (AdaRank App.).
    params=(Param(**{**ALPHA.__dict__, "default": 0.3}),),
    layer_fn=task_arithmetic,
    non_matrix="sum",
    description="θ₀ + α Σ_t Δ_t.",
)
