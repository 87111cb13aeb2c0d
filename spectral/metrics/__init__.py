"""Metrics over task matrices and merged models (docs/contributing.md, "Math conventions").

- :mod:`.sti`: Singular Task Interference (Gargiulo et al. 2025, TSV Eq. 6).
- :mod:`.sar`: Subspace Alignment Ratio and SAR_avg (Marczak et al. 2025, Iso Eq. 5-6).
- :mod:`.spectra`: singular values, energy curves, effective rank (AdaRank Fig. 3).
- :mod:`.similarity`: cosine similarity of flattened task vectors, streamed over layers; per-layer norms.
- :mod:`.accuracy`: normalised accuracy, NAI (Iso Eq. 4), Pearson's r.

Functions that need per-task SVDs also have ``*_from_factors`` / factor-accepting variants, so the engine can feed
factors from the SVD cache instead of recomputing them.
"""
from __future__ import annotations

from spectral.metrics.accuracy import (
    AccuracySummary,
    nai,
    nai_value,
    normalised_accuracy,
    normalised_accuracy_value,
    pearson_r,
)
from spectral.metrics.sar import (
    SarLayer,
    merged_rank,
    sar,
    sar_from_factors,
    sar_layer_matrix,
    sar_layer_to_merged,
    sar_matrix,
    sar_to_merged,
)
from spectral.metrics.similarity import CosineAccumulator, cosine_similarity_matrix, layer_norms
from spectral.metrics.spectra import (
    effective_rank,
    effective_rank_from_singular_values,
    effective_ranks,
    energy_curve,
    normalised_spectrum,
    singular_values,
)
from spectral.metrics.sti import StiBlocks, default_sti_rank, sti, sti_blocks, sti_from_factors

__all__ = [
    "AccuracySummary",
    "CosineAccumulator",
    "SarLayer",
    "StiBlocks",
    "cosine_similarity_matrix",
    "default_sti_rank",
    "effective_rank",
    "effective_rank_from_singular_values",
    "effective_ranks",
    "energy_curve",
    "layer_norms",
    "merged_rank",
    "nai",
    "nai_value",
    "normalised_accuracy",
    "normalised_accuracy_value",
    "normalised_spectrum",
    "pearson_r",
    "sar",
    "sar_from_factors",
    "sar_layer_matrix",
    "sar_layer_to_merged",
    "sar_matrix",
    "sar_to_merged",
    "singular_values",
    "sti",
    "sti_blocks",
    "sti_from_factors",
]
