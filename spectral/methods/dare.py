"""DARE (Yu et al., ICML 2024): drop task-vector entries at random, rescale the rest, then merge (TA or TIES)."""
from __future__ import annotations

import zlib
from typing import Callable, Iterator, Mapping

import torch
from torch import Tensor

from spectral.errors import ParameterError
from spectral.methods.base import ALPHA, Method, Param, as_float
from spectral.methods.elementwise import TRIM_CHOICES, ties

Progress = Callable[[int, int, str], None]


def drop_and_rescale(stacked: Tensor, *, p: float, generator: torch.Generator) -> Tensor:
    """DARE on one key's stacked (T, ...) task vectors (Yu et al. 2024, Eq. 1-2): every entry is dropped with
    probability ``p`` and the kept ones are divided by 1 − p, so the expectation is the task vector itself."""
    x = as_float(stacked)
    if p <= 0.0:
        return x
    if p >= 1.0:
        raise ParameterError(f"dare: drop rate p must be below 1 (nothing would be kept), got {p}")
    keep = torch.rand(x.shape, generator=generator, dtype=torch.float32) >= p
    return torch.where(keep.to(x.device), x / (1.0 - p), torch.zeros((), dtype=x.dtype, device=x.device))


def key_generator(seed: int, key: str) -> torch.Generator:
    """A generator per (seed, key): the same key draws the same mask however often or in whatever order it is
    read (TIES reads every key twice)."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2**63 - 1))
    return g


class DroppedTaskVectors(Mapping[str, Tensor]):
    """A lazy view of task vectors with DARE applied to each key on access."""

    def __init__(self, task_vectors: Mapping[str, Tensor], *, p: float, seed: int) -> None:
        self._tv, self._p, self._seed = task_vectors, p, seed

    def __getitem__(self, key: str) -> Tensor:
        return drop_and_rescale(self._tv[key], p=self._p, generator=key_generator(self._seed, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._tv)

    def __len__(self) -> int:
        return len(self._tv)


def dare(
    task_vectors: Mapping[str, Tensor],
    *,
    alpha: float = 0.3,
    p: float = 0.5,
    merge: str = "task_arithmetic",
    density: float = 0.2,
    seed: int = 0,
    trim: str = "global",
    normalize: bool = True,
    progress: Progress | None = None,
) -> dict[str, Tensor]:
    """DARE (Yu et al. 2024): drop-and-rescale every task vector (seeded), then Task Arithmetic (α·Σ_t) or TIES
    (trim to ``density``, elect signs, disjoint mean, α·τ)."""
    dropped = DroppedTaskVectors(task_vectors, p=p, seed=seed)
    if merge == "ties":
        return ties(dropped, alpha=alpha, density=density, trim=trim, normalize=normalize, progress=progress)
    if merge != "task_arithmetic":
        raise ParameterError(f"dare: merge must be 'task_arithmetic' or 'ties', got {merge!r}")
    keys = list(dropped)
    out: dict[str, Tensor] = {}
    for i, key in enumerate(keys):
        out[key] = alpha * dropped[key].sum(0)
        if progress:
            progress(i + 1, len(keys), f"DARE: {key}")
    return out


DARE = Method(
    name="dare",
    display_name="DARE",
    paper="Yu et al. 2024, Language Models are Super Mario (DARE), ICML",
    params=(
        Param(**{**ALPHA.__dict__, "default": 0.3}),
        # The paper drops up to 90% of an LLM's delta entries; smaller models tolerate less, so we start at 0.5.
        Param("p", 0.5, "float", 0.0, 0.99, 0.01, label="drop rate p",
              help="Probability of dropping each task-vector entry; kept entries are scaled by 1/(1 − p)."),
        Param("merge", "task_arithmetic", "choice", choices=("task_arithmetic", "ties"), label="then merge with",
              help="Task Arithmetic (α·Σ_t) or TIES on the dropped-and-rescaled task vectors."),
        Param("density", 0.2, "float", 0.0, 1.0, 0.01, label="TIES density",
              help="Only with TIES: fraction of each task vector's entries kept by magnitude."),
        Param("seed", 0, "int", 0, 2**31 - 1, 1, label="seed", help="Seed of the random drop masks."),
        Param("trim", "global", "choice", choices=TRIM_CHOICES, label="TIES trim over",
              help="Only with TIES: 'global' (TIES authors' code) or 'per_tensor' (mergekit)."),
        Param("normalize", True, "bool", label="TIES disjoint mean",
              help="Only with TIES: average the agreeing entries (on) or sum them (off: mergekit's dare_ties)."),
    ),
    model_fn=dare,
    description="Random drop with rescaling (unbiased), then Task Arithmetic or TIES.",
)
