"""Benchmark data: prompt templates and class names of the papers' 20 tasks, and data sets from local folders."""
from __future__ import annotations

from spectral.data.templates import (
    ALL_DATASETS,
    DATASETS_8,
    DATASETS_14,
    DATASETS_20,
    canonical_dataset_name,
    class_names,
    get_templates,
    render_prompts,
)

__all__ = [
    "ALL_DATASETS",
    "DATASETS_8",
    "DATASETS_14",
    "DATASETS_20",
    "canonical_dataset_name",
    "class_names",
    "get_templates",
    "render_prompts",
]
