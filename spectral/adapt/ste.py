"""Binary masks over singular components with a straight-through estimator (AdaRank, Lee et al. 2025, §5 and
App. A "Details of Straight-Through Estimator"; docs/contributing.md, "Math conventions").

A mask entry is a real logit b̃. Forward: B = 1{sigmoid(b̃ / T) > 0.5} (T = 10, the paper's best temperature);
backward: the gradient of sigmoid(b̃ / T) (the hard threshold is treated as the identity).
"""
from __future__ import annotations

import torch
from torch import Tensor

#: AdaRank App. A: T = 10 performed best among {1, 2, 5, 10}.
DEFAULT_TEMPERATURE = 10.0
#: |initial logit|: kept components start at +0.1, pruned ones at -0.1 (as in the authors' code), so a component
#: flips after a few hundred Adam steps of lr 1e-3 that agree in sign.
DEFAULT_LOGIT_INIT = 0.1


def mask_probability(logits: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """The continuous relaxation m = sigmoid(logit / T)."""
    return torch.sigmoid(logits / temperature)


def hard_mask(logits: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """The binary mask B = (sigmoid(logit / T) > 0.5) as a bool tensor (no gradient)."""
    return mask_probability(logits.detach(), temperature) > 0.5


def ste_mask(logits: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Straight-through binary mask: the forward value is exactly 0.0 or 1.0, the gradient that of m.

    Written as ``B + (m − m.detach())``: the second term is exactly zero in the forward pass (unlike the common
    ``m + (B − m).detach()``, which can round 1 to 0.99999994), and its gradient is dm/dlogit.
    """
    m = mask_probability(logits, temperature)
    return (m.detach() > 0.5).to(m.dtype) + (m - m.detach())


def initial_logits(
    num_tasks: int, rank: int, kept: int, *, magnitude: float = DEFAULT_LOGIT_INIT, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(T, r) logits whose hard mask keeps the first ``kept`` components of every task (AdaRank §6.1: all ones
    for Task Arithmetic, the top-k of CART)."""
    if magnitude <= 0:
        raise ValueError(f"initial logit magnitude must be positive, got {magnitude}")
    logits = torch.full((num_tasks, rank), -float(magnitude), dtype=dtype)
    logits[:, : max(0, min(rank, kept))] = float(magnitude)
    return logits
