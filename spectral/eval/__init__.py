"""Evaluation: zero-shot heads, accuracy of any image-tower state dict on a pool's tasks, the SQLite results
store, and the papers' sweeps (TSV-C rank, alpha, Iso-CTS common subspace, TSV Table 4 ablation)."""
from __future__ import annotations

from spectral.eval.evaluate import Evaluator, Summary, eval_tensors, summarize, task_accuracies
from spectral.eval.heads import zeroshot_head
from spectral.eval.results import (
    ResultKey, ResultsStore, canonical_params, code_version, pool_fingerprint,
)

__all__ = [
    "Evaluator", "ResultKey", "ResultsStore", "Summary", "canonical_params", "code_version", "eval_tensors",
    "pool_fingerprint", "summarize", "task_accuracies", "zeroshot_head",
]
