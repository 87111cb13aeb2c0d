"""Writing an adaptation result to disk: merged state dict, masks, λ and traces (safetensors + JSON, atomic)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spectral.adapt.run import AdaptResult
from spectral.io import atomic_save_tensors, atomic_write_bytes


def result_summary(result: AdaptResult, accuracies: dict[str, float] | None = None) -> dict[str, Any]:
    """A JSON-able description of a result (config, selection, kept ranks, timing, accuracies when given)."""
    return {
        "run_id": result.run_id,
        "label": result.label,
        "method": result.config.result_method,
        "config": result.config.to_dict(),
        "tasks": result.task_names,
        "steps_done": result.step,
        "finished": result.finished,
        "selection": result.selection,
        "selected_step": result.selected_step,
        "seconds_per_step": result.seconds_per_step,
        "kept_rank": result.kept_rank(),
        "accuracy": accuracies,
        "accuracy_note": "test accuracy of the selected model; the selection itself used no labels",
    }


def save_result(
    result: AdaptResult, folder: str | Path, *, accuracies: dict[str, float] | None = None
) -> dict[str, Path]:
    """Write ``merged.safetensors`` (the image tower), ``masks.safetensors`` (bool (T, r) per layer, stored as
    uint8), ``lambdas.safetensors`` ((T, P), keys in the metadata), ``traces.json`` and ``summary.json``."""
    folder = Path(folder)
    meta = {"run_id": result.run_id, "label": result.label, "tasks": json.dumps(result.task_names),
            "selected_step": str(result.selected_step), "selection": result.selection}
    paths = {
        "merged": folder / "merged.safetensors",
        "masks": folder / "masks.safetensors",
        "lambdas": folder / "lambdas.safetensors",
        "traces": folder / "traces.json",
        "summary": folder / "summary.json",
    }
    atomic_save_tensors(paths["merged"], {k: v.contiguous() for k, v in result.state_dict.items()}, meta)
    atomic_save_tensors(paths["masks"], {k: m.to(dtype=torch.uint8) for k, m in result.masks.items()}
                        or {"none": torch.zeros(0)}, meta)
    atomic_save_tensors(paths["lambdas"], {"lambda": result.lambdas.contiguous()},
                        {**meta, "keys": json.dumps(result.lambda_keys)})
    atomic_write_bytes(paths["traces"], json.dumps(result.traces).encode())
    atomic_write_bytes(paths["summary"], json.dumps(result_summary(result, accuracies), indent=1).encode())
    return paths


def merged_bytes(result: AdaptResult) -> bytes:
    """The merged image tower as safetensors bytes (for a download button)."""
    from safetensors.torch import save

    meta = {"run_id": result.run_id, "label": result.label, "tasks": json.dumps(result.task_names),
            "selected_step": str(result.selected_step), "selection": result.selection}
    return save({k: v.contiguous() for k, v in result.state_dict.items()}, metadata=meta)


def masks_bytes(result: AdaptResult) -> bytes:
    """The learned masks, one uint8 (T, r) tensor per layer, as safetensors bytes."""
    from safetensors.torch import save

    tensors = {k: m.to(torch.uint8).contiguous() for k, m in result.masks.items()} or {"none": torch.zeros(0)}
    return save(tensors, metadata={"run_id": result.run_id, "tasks": json.dumps(result.task_names)})
