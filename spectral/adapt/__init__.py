"""Test-time adaptation of merged models: AdaRank (Lee et al. 2025) on Task Arithmetic and CART, and AdaMerging
(Yang et al. 2024) with task-wise or layer-wise coefficients.

>>> from spectral.adapt import AdaptConfig, Adaptation                      # doctest: +SKIP
>>> run = Adaptation(engine, pool, AdaptConfig(method="adarank", base="task_arithmetic", steps=100))
>>> result = run.run(progress=lambda i, n, text: ...)   # stop with a threading.Event, resume by calling run again
>>> result.state_dict, result.masks, result.lambdas, result.traces

Background runs for the dashboard: :class:`RunRegistry`. Results store: :mod:`spectral.adapt.store`.
"""
from __future__ import annotations

from spectral.adapt.data import softmax_entropy
from spectral.adapt.merge import AdaptiveMerge, kept_rank, masked_keys
from spectral.adapt.registry import RunHandle, RunRegistry
from spectral.adapt.run import AdaptConfig, Adaptation, AdaptResult, run_adaptation
from spectral.adapt.ste import hard_mask, initial_logits, mask_probability, ste_mask

__all__ = [
    "AdaptConfig", "AdaptResult", "Adaptation", "AdaptiveMerge", "RunHandle", "RunRegistry", "hard_mask",
    "initial_logits", "kept_rank", "mask_probability", "masked_keys", "run_adaptation", "softmax_entropy",
    "ste_mask",
]
