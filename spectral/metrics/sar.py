"""Subspace Alignment Ratio (SAR), Marczak et al. 2025 (Iso-C / Iso-CTS), Eq. 5-6.

    SAR(Δ_src, Δ_trg; k_M) = ‖Π_{k_M,trg} Δ_src‖_F / ‖Δ_src‖_F                          (Eq. 5)
    k_M = min{k : ‖Δ_M − Π_{k,M} Δ_M‖_F ≤ ε ‖Δ_M‖_F},  ε = 0.05                         (Eq. 6)

``Π_{k,X} = U_{k,X} U_{k,X}ᵀ`` projects onto the top-k LEFT singular vectors of X. Since
``‖Δ_M − Π_{k,M} Δ_M‖_F² = Σ_{i>k} σ_i²``, k_M is computed from the merged matrix's singular values alone, and
since U_k has orthonormal columns, ``‖Π_k Δ_src‖_F = ‖U_kᵀ Δ_src‖_F``. SAR_avg is the mean over matrix layers.

``k_rule="paper"`` is Eq. 6. ``k_rule="energy"`` is the rule of the authors' analysis script: the smallest k whose
cumulative energy ratio Σ_{i≤k} σ_i² / Σ_i σ_i² exceeds ``energy`` (0.95). That script also reuses a variable
name in a way that changes which matrix k is computed from; that bug is not reproduced: k always comes from the
merged matrix of the same layer.

Conventions for degenerate layers (documented, not errors): a zero merged matrix gives k_M = 0 under both rules
(Eq. 6 holds at k = 0), hence SAR = 0; a zero source matrix makes SAR undefined (0/0) and gives NaN, which the
layer averages skip (mean over the layers where SAR is defined; NaN when there are none).

Inputs for the averaged metrics are iterables of per-layer items, consumed one at a time, so a whole model never
has to be in memory: see :class:`SarLayer`.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ShapeMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "KRule",
    "SarLayer",
    "merged_rank",
    "sar",
    "sar_from_factors",
    "sar_layer_matrix",
    "sar_layer_to_merged",
    "sar_matrix",
    "sar_to_merged",
]

KRule = Literal["paper", "energy"]
Progress = Callable[[int, int, str], Any]


def _float(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def merged_rank(S_merged: Tensor, eps: float = 0.05, *, rule: KRule = "paper", energy: float = 0.95) -> int:
    """k_M of a merged matrix from its singular values (Iso Eq. 6).

    ``rule="paper"``: smallest k ∈ [0, r] with ``sqrt(Σ_{i>k} σ_i²) ≤ eps · sqrt(Σ_i σ_i²)``.
    ``rule="energy"``: smallest k with ``Σ_{i≤k} σ_i² / Σ_i σ_i² > energy`` (the authors' script; r if the ratio
    never exceeds ``energy``, which only happens for energy ≥ 1 up to round-off). ``eps`` is ignored by it.
    ``S_merged`` is 1-D (any order; it is sorted descending here). A zero spectrum gives 0. Computed in float64.
    """
    if S_merged.ndim != 1:
        raise ShapeMismatchError(
            f"merged_rank: S_merged must be 1-D singular values, got shape {tuple(S_merged.shape)}"
        )
    if rule not in ("paper", "energy"):
        raise ValueError(f"merged_rank: unknown k rule {rule!r}; expected 'paper' or 'energy'")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"merged_rank: eps must be in [0, 1), got {eps}")
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"merged_rank: energy must be in (0, 1], got {energy}")
    r = int(S_merged.numel())
    sq = torch.sort(S_merged.detach().to(torch.float64).abs(), descending=True).values.square()
    total = float(sq.sum())
    if r == 0 or total == 0.0:
        return 0
    if rule == "paper":
        # tail[k] = Σ_{i≥k} σ_i² (0-based) = squared residual after keeping the top k; tail[r] = 0.
        tail = torch.flip(torch.cumsum(torch.flip(sq, (0,)), 0), (0,))
        tail = torch.cat([tail, tail.new_zeros(1)])
        ok = tail <= (eps * eps) * total
    else:
        ratio = torch.cumsum(sq, 0) / total  # ratio[k − 1] = energy of the top k
        ok = torch.cat([torch.zeros(1, dtype=torch.bool, device=sq.device), ratio > energy])
        ok[-1] = True
    return int(torch.nonzero(ok)[0, 0])


def sar_from_factors(source: Tensor, U_target: Tensor, k: int) -> float:
    """SAR (Iso Eq. 5) with the target's left singular vectors given (e.g. from the SVD cache).

    ``source`` is Δ_src ``(m, n)``; ``U_target`` is ``(m, ρ)`` with orthonormal columns sorted by descending
    singular value, ρ ≥ k (``thin_svd(Δ_trg)[0]`` or ``LayerFactors.task_svd()[0][t]``). Returns
    ``‖U_kᵀ Δ_src‖_F / ‖Δ_src‖_F`` clipped to [0, 1] against round-off; 0 when k = 0; NaN when Δ_src = 0.
    """
    if source.ndim != 2 or U_target.ndim != 2:
        raise ShapeMismatchError(
            f"sar: source must be (m, n) and U_target (m, ρ); got {tuple(source.shape)} and {tuple(U_target.shape)}"
        )
    if U_target.shape[0] != source.shape[0]:
        raise ShapeMismatchError(
            f"sar: U_target {tuple(U_target.shape)} does not match the rows of source {tuple(source.shape)}"
        )
    if not 0 <= k <= U_target.shape[1]:
        raise ShapeMismatchError(
            f"sar: k = {k} outside [0, {U_target.shape[1]}] for U_target of shape {tuple(U_target.shape)}"
        )
    src = _float(source)
    denom = float(torch.linalg.vector_norm(src.to(torch.float64)))
    if denom == 0.0:
        return math.nan
    if k == 0:
        return 0.0
    proj = U_target[:, :k].to(src.dtype).mT @ src
    num = float(torch.linalg.vector_norm(proj.to(torch.float64)))
    return min(1.0, num / denom)


def _check_same_2d(what: str, **tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if any(len(s) != 2 for s in shapes.values()) or len(set(shapes.values())) != 1:
        listed = ", ".join(f"{name} {s}" for name, s in shapes.items())
        raise ShapeMismatchError(f"{what}: expected matrices of one shape (m, n); got {listed}")


def sar(
    source: Tensor,
    target: Tensor,
    merged: Tensor,
    *,
    eps: float = 0.05,
    k_rule: KRule = "paper",
    energy: float = 0.95,
) -> float:
    """Subspace Alignment Ratio of one layer (Marczak et al. 2025, Iso Eq. 5-6).

    ``‖Π_{k_M,target} source‖_F / ‖source‖_F`` with k_M from ``merged`` (:func:`merged_rank`) and the projector
    on ``target``'s top-k_M left singular vectors. All three are ``(m, n)``. In [0, 1];
    ``sar(Δ, Δ, Δ) ≥ sqrt(1 − eps²)`` under the paper's rule.
    """
    _check_same_2d("sar", source=source, target=target, merged=merged)
    k = merged_rank(torch.linalg.svdvals(_float(merged)), eps, rule=k_rule, energy=energy)
    U_target = linalg.thin_svd(_float(target))[0]
    return sar_from_factors(source, U_target, k)


@dataclass
class SarLayer:
    """One layer's inputs for :func:`sar_matrix` / :func:`sar_to_merged`; cached factors may replace SVDs.

    - ``task_matrices``: stacked Δ_t, ``(T, m, n)`` (always needed: they are the sources).
    - ``merged``: Δ_M ``(m, n)``; needed unless ``merged_singular_values`` (and, for :func:`sar_to_merged`,
      ``merged_left``) are given.
    - ``task_left``: ``(T, m, ρ)`` left singular vectors of each Δ_t (``LayerFactors.task_svd()[0]``).
    - ``merged_singular_values``: ``(r,)`` singular values of Δ_M. k_M is scale-invariant, so for Task
      Arithmetic (Δ_M = α Σ_t Δ_t) ``LayerFactors.sum_svd()[1]`` serves.
    - ``merged_left``: ``(m, ρ)`` left singular vectors of Δ_M (``LayerFactors.sum_svd()[0]`` for TA).
    - ``name``: the layer's key, for progress text and error messages.
    """

    task_matrices: Tensor
    merged: Tensor | None = None
    task_left: Tensor | None = None
    merged_singular_values: Tensor | None = None
    merged_left: Tensor | None = None
    name: str = ""

    @classmethod
    def coerce(cls, item: Any) -> "SarLayer":
        """A SarLayer, or a ``(tasks, merged)`` pair where tasks is a (T, m, n) tensor or a LayerFactors."""
        if isinstance(item, SarLayer):
            return item
        if isinstance(item, (tuple, list)) and len(item) == 2:
            tasks, merged = item
            if isinstance(tasks, Tensor):
                return cls(task_matrices=tasks, merged=merged)
            if hasattr(tasks, "task_svd") and hasattr(tasks, "task_matrices"):
                return cls(task_matrices=tasks.task_matrices, merged=merged, task_left=tasks.task_svd()[0])
        raise TypeError(
            "SAR layers must be SarLayer objects or (task_matrices | LayerFactors, merged) pairs; "
            f"got {type(item).__name__}"
        )

    def _where(self) -> str:
        return f"layer {self.name!r}" if self.name else "layer"

    def validate(self) -> tuple[int, int, int]:
        tm = self.task_matrices
        if tm.ndim != 3 or tm.shape[0] == 0:
            raise ShapeMismatchError(
                f"SAR {self._where()}: task_matrices must be (T, m, n) with T ≥ 1; got {tuple(tm.shape)}"
            )
        T, m, n = (int(s) for s in tm.shape)
        if self.merged is not None and tuple(self.merged.shape) != (m, n):
            raise ShapeMismatchError(
                f"SAR {self._where()}: merged {tuple(self.merged.shape)} does not match task matrices {tuple(tm.shape)}"
            )
        if self.task_left is not None and (
            self.task_left.ndim != 3 or tuple(self.task_left.shape[:2]) != (T, m)
        ):
            raise ShapeMismatchError(
                f"SAR {self._where()}: task_left must be (T={T}, m={m}, ρ); got {tuple(self.task_left.shape)}"
            )
        if self.merged_left is not None and (self.merged_left.ndim != 2 or self.merged_left.shape[0] != m):
            raise ShapeMismatchError(
                f"SAR {self._where()}: merged_left must be (m={m}, ρ); got {tuple(self.merged_left.shape)}"
            )
        return T, m, n

    def merged_rank(self, eps: float, rule: KRule, energy: float) -> int:
        S = self.merged_singular_values
        if S is None:
            if self.merged is None:
                raise ValueError(f"SAR {self._where()}: give merged or merged_singular_values")
            S = torch.linalg.svdvals(_float(self.merged))
        return merged_rank(S, eps, rule=rule, energy=energy)


def _projected_norms(U_k: Tensor, sources: Tensor) -> Tensor:
    """‖U_kᵀ Δ_i‖_F for each i of a (T, m, n) stack, in float64."""
    proj = U_k.to(sources.dtype).mT @ sources  # (T, k, n)
    return torch.linalg.vector_norm(proj.to(torch.float64), dim=(-2, -1))


def _ratios(num: Tensor, den: Tensor) -> Tensor:
    out = (num / den).clamp(0.0, 1.0)
    return torch.where(den > 0, out, torch.full_like(out, math.nan))


def sar_layer_matrix(
    layer: SarLayer | tuple[Any, Tensor], *, eps: float = 0.05, k_rule: KRule = "paper", energy: float = 0.95
) -> tuple[Tensor, int]:
    """Pairwise SAR of one layer (Iso Eq. 5, Fig. 3b): ``(T, T)`` float64 and k_M.

    Entry ``[i, j] = SAR(Δ_i, Δ_j; k_M)``: row = source task, column = target task. NaN rows for zero Δ_i.
    """
    layer = SarLayer.coerce(layer)
    T, m, n = layer.validate()
    k = layer.merged_rank(eps, k_rule, energy)
    sources = _float(layer.task_matrices)
    den = torch.linalg.vector_norm(sources.to(torch.float64), dim=(-2, -1))  # (T,)
    out = torch.zeros(T, T, dtype=torch.float64, device=sources.device)
    if k > 0:
        U = layer.task_left
        if U is None:
            U = linalg.thin_svd(sources)[0]
        if k > U.shape[-1]:
            # Factors narrower than k_M are fine when they hold all of Δ_j (a LoRA layer's r triplets, zero-padded:
            # spectral.lora): directions beyond Δ_j's rank would be an arbitrary completion of a dense SVD, so the
            # projector is onto the columns there are. Truncated factors of a higher-rank Δ_j are an error.
            own = torch.stack([_projected_norms(U[j], sources[j : j + 1])[0] for j in range(T)])
            if bool((own < den * (1 - 1e-4)).any()):
                raise ShapeMismatchError(
                    f"SAR {layer._where()}: k_M = {k} exceeds the {U.shape[-1]} left singular vectors in task_left "
                    f"{tuple(U.shape)}, and they do not hold all of every task matrix"
                )
        for j in range(T):
            out[:, j] = _projected_norms(U[j, :, :k], sources)
    return _ratios(out, den.unsqueeze(1)), k


def sar_layer_to_merged(
    layer: SarLayer | tuple[Any, Tensor], *, eps: float = 0.05, k_rule: KRule = "paper", energy: float = 0.95
) -> tuple[Tensor, int]:
    """SAR of every task against the merged matrix in one layer (Iso Fig. 3a): ``(T,)`` float64 and k_M.

    Entry ``t = SAR(Δ_t, Δ_M; k_M)``: the projector is on Δ_M's own top-k_M left singular vectors.
    """
    layer = SarLayer.coerce(layer)
    T, m, n = layer.validate()
    sources = _float(layer.task_matrices)
    den = torch.linalg.vector_norm(sources.to(torch.float64), dim=(-2, -1))
    U_M, S_M = layer.merged_left, layer.merged_singular_values
    if U_M is None or S_M is None:
        if layer.merged is None:
            raise ValueError(
                f"SAR {layer._where()}: sar_to_merged needs merged, or both merged_left and merged_singular_values"
            )
        U_M, S_M, _ = linalg.thin_svd(_float(layer.merged))
    k = merged_rank(S_M, eps, rule=k_rule, energy=energy)
    if k > U_M.shape[-1]:
        raise ShapeMismatchError(
            f"SAR {layer._where()}: k_M = {k} exceeds the {U_M.shape[-1]} columns of merged_left {tuple(U_M.shape)}"
        )
    if k == 0:
        num = torch.zeros(T, dtype=torch.float64, device=sources.device)
    else:
        num = _projected_norms(U_M[:, :k], sources)
    return _ratios(num, den), k


def _average(
    layers: Iterable[Any],
    per_layer: Callable[..., tuple[Tensor, int]],
    what: str,
    eps: float,
    k_rule: KRule,
    energy: float,
    progress: Progress | None,
    num_layers: int | None,
) -> Tensor:
    total = len(layers) if isinstance(layers, Sized) else (num_layers or 0)
    acc: Tensor | None = None
    count: Tensor | None = None
    i = 0
    for i, item in enumerate(layers, start=1):
        layer = SarLayer.coerce(item)
        values, k = per_layer(layer, eps=eps, k_rule=k_rule, energy=energy)
        if acc is None:
            acc = torch.zeros_like(values)
            count = torch.zeros_like(values)
        elif values.shape != acc.shape:
            raise ShapeMismatchError(
                f"{what}: {layer._where()} has {values.shape[0]} tasks, earlier layers had {acc.shape[0]}"
            )
        defined = ~torch.isnan(values)
        acc += torch.where(defined, values, torch.zeros_like(values))
        count += defined.to(acc.dtype)
        logger.debug("%s: %s k_M=%d", what, layer._where(), k)
        if progress is not None:
            progress(i, total, f"SAR {layer.name or i}: k_M = {k}")
    if acc is None or count is None:
        raise ValueError(f"{what}: no layers given")
    return acc / count  # 0/0 → NaN where no layer defined the value


def sar_matrix(
    layers: Iterable[SarLayer | tuple[Any, Tensor]],
    *,
    eps: float = 0.05,
    k_rule: KRule = "paper",
    energy: float = 0.95,
    progress: Progress | None = None,
    num_layers: int | None = None,
) -> Tensor:
    """Pairwise SAR_avg across tasks (Iso Eq. 5-6, Fig. 3b): ``(T, T)`` float64.

    ``[i, j] = mean over layers of SAR(Δ_i, Δ_j; k_M)`` with k_M from each layer's merged matrix. ``layers`` is any
    iterable (a generator is fine: one layer is held at a time) of :class:`SarLayer` or ``(tasks, merged)`` pairs.
    ``progress(i, n, text)`` is called after each layer; n is ``len(layers)`` when known, else ``num_layers``, else 0.
    """
    return _average(layers, sar_layer_matrix, "sar_matrix", eps, k_rule, energy, progress, num_layers)


def sar_to_merged(
    layers: Iterable[SarLayer | tuple[Any, Tensor]],
    *,
    eps: float = 0.05,
    k_rule: KRule = "paper",
    energy: float = 0.95,
    progress: Progress | None = None,
    num_layers: int | None = None,
) -> Tensor:
    """SAR_avg(Δ_t, Δ_M; k_M) of each task against the merged model (Iso Fig. 3a): ``(T,)`` float64.

    Same inputs as :func:`sar_matrix`; the target of every task is the merged matrix of the layer.
    """
    return _average(layers, sar_layer_to_merged, "sar_to_merged", eps, k_rule, energy, progress, num_layers)
