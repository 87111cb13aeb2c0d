"""The differentiable merged model of AdaRank and AdaMerging: θ(B, λ) for every parameter of a TaskSet.

For every floating-point parameter p of the image tower the merged value is

    θ_p(B, λ) = c_p + Σ_i λ_{i,p} · D_{i,p}(B)

with, for the two bases of AdaRank §6.1 (Eq. 5; "Task Arithmetic with SVD" and CART):

==================  ==============  ===========================================================
base                c_p             D_{i,p} in a masked layer (AdaRank Eq. 5)
==================  ==============  ===========================================================
task_arithmetic     θ₀              U_i diag(B_i ⊙ σ_i) V_iᵀ   (SVD of Δ_i; initial B = 1)
cart                θ₀ + mean_j Δ_j U_i diag(B_i ⊙ σ_i) V_iᵀ   (SVD of Δ_i − mean_j Δ_j; initial top-k)
==================  ==============  ===========================================================

Parameters without a mask are merged as in the base method, scaled by the same per-task λ: Task Arithmetic uses
D_i = Δ_i; CART uses the engine's static CART part, i.e. SVD_k(Δ_i − mean Δ) for matrices of the TaskSet that are
not masked and Δ_i − mean Δ (which sums to zero at equal λ, leaving the weight average) for everything else.
With every mask at its initial value and λ equal to the base method's α this reproduces ``engine.merge(base,
alpha=λ)`` (Task Arithmetic; CART with the same k_frac) up to float32 rounding.

With Task Arithmetic as base, a masked layer is computed in the equivalent complement form
Σ_i λ_i Δ_i − Σ_i λ_i U_i diag((1 − B_i) ⊙ σ_i) V_iᵀ (Δ_i = U_i diag σ_i V_iᵀ exactly for the thin SVD): with the
all-ones initial mask the second term is exactly zero, so the starting point is Task Arithmetic itself and not its
SVD reconstruction. Values and gradients are those of Eq. 5.

λ is one scalar per task per parameter tensor (``lambda_mode="layer"``, AdaMerging's layer-wise coefficients and
the AdaRank default), one per task (``"task"``), or fixed (``"frozen"``). AdaMerging (Yang et al. 2024) is the same
model without masks. Every singular factor comes from the engine's SVD cache (``engine.layer(key).task_svd()`` /
``.centered_svd()``): nothing is decomposed here.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping

import torch
from torch import Tensor

from spectral import linalg
from spectral.adapt.ste import DEFAULT_LOGIT_INIT, DEFAULT_TEMPERATURE, hard_mask, initial_logits, ste_mask
from spectral.errors import ParameterError
from spectral.taskset import MATRIX_FILTERS

log = logging.getLogger(__name__)

BASES = ("task_arithmetic", "cart")
LAMBDA_MODES = ("layer", "task", "frozen")

Progress = Callable[[int, int, str], None]


def _noop(i: int, n: int, text: str) -> None:
    return None


def masked_keys(taskset: object, mask_filter: str) -> list[str]:
    """Matrix keys of the TaskSet that also pass ``mask_filter`` ("attn_mlp": AdaRank's code masks only the
    attention and MLP weights; "default": every matrix of the TaskSet), by the rules of the TaskSet's pool family
    (GPT-2's attention is ``attn.c_attn``/``attn.c_proj``, CLIP's ``attn.in_proj``/``out_proj``)."""
    filters = getattr(taskset, "filters", MATRIX_FILTERS)
    if mask_filter not in filters:
        raise ParameterError(f"mask_filter must be one of {sorted(filters)}, got {mask_filter!r}")
    keep = filters[mask_filter]
    return [k for k in taskset.matrix_keys if keep(k, taskset.base[k])]  # type: ignore[attr-defined]


class AdaptiveMerge:
    """Learnable merge θ(B, λ) of an :class:`~spectral.engine.Engine`'s TaskSet (see the module docstring).

    ``logits[key]`` (T, r) are the mask logits of every masked key (AdaRank); ``lam`` is (T, P) for
    ``lambda_mode="layer"`` (P = number of floating-point parameters, in ``keys`` order) or (T, 1) otherwise.
    """

    def __init__(
        self,
        engine: object,
        *,
        base: str = "task_arithmetic",
        masked: bool = True,
        mask_filter: str = "attn_mlp",
        lambda_mode: str = "layer",
        lambda_init: float = 0.3,
        k_frac: float = 0.16,
        temperature: float = DEFAULT_TEMPERATURE,
        logit_init: float = DEFAULT_LOGIT_INIT,
        lambda_clamp: tuple[float, float] | None = None,
        progress: Progress | None = None,
    ) -> None:
        if base not in BASES:
            raise ParameterError(f"base must be one of {list(BASES)}, got {base!r}")
        if lambda_mode not in LAMBDA_MODES:
            raise ParameterError(f"lambda_mode must be one of {list(LAMBDA_MODES)}, got {lambda_mode!r}")
        if not 0.0 < k_frac <= 1.0:
            raise ParameterError(f"k_frac must be in (0, 1], got {k_frac}")
        if temperature <= 0:
            raise ParameterError(f"temperature must be positive, got {temperature}")
        progress = progress or _noop
        ts = engine.taskset  # type: ignore[attr-defined]
        self.engine = engine
        self.taskset = ts
        self.base = base
        self.device: torch.device = engine.device  # type: ignore[attr-defined]
        self.temperature = float(temperature)
        self.lambda_mode = lambda_mode
        self.lambda_clamp = lambda_clamp
        self.k_frac = float(k_frac)
        self.task_names: list[str] = list(ts.task_names)
        self.keys: list[str] = list(ts.keys)
        self.mask_keys: list[str] = masked_keys(ts, mask_filter) if masked else []
        T = ts.num_tasks
        dev = self.device

        self.constant: dict[str, Tensor] = {}
        self.dense: dict[str, Tensor] = {}  # (T, *shape) per-task contributions of unmasked parameters
        self.full: dict[str, Tensor] = {}  # (T, m, n) Δ_i of masked layers (Task Arithmetic complement form)
        self.U: dict[str, Tensor] = {}  # (m, T·r) task-major concatenation of U_i
        self.S: dict[str, Tensor] = {}  # (T, r)
        self.V: dict[str, Tensor] = {}  # (n, T·r)
        self.logits: dict[str, Tensor] = {}
        self.rank: dict[str, int] = {}
        self.initial_kept: dict[str, int] = {}
        mask_set = set(self.mask_keys)
        matrix_set = set(ts.matrix_keys)
        n_keys = len(self.keys)
        for i, key in enumerate(self.keys):
            progress(i, n_keys, f"preparing {key}")
            stacked = ts.task_matrices(key).to(dev, torch.float32).clone()
            base_value = ts.base[key].to(dev, torch.float32).clone()
            mean = stacked.mean(0) if base == "cart" else None
            self.constant[key] = base_value + mean if mean is not None else base_value
            if key in mask_set:
                layer = engine.layer(key)  # type: ignore[attr-defined]
                U, S, V = layer.task_svd() if base == "task_arithmetic" else layer.centered_svd()
                # copies: factors (or pool tensors) made under torch.inference_mode cannot enter autograd
                U, S, V = (f.to(dev, torch.float32).clone() for f in (U, S, V))
                r = int(S.shape[-1])
                self.rank[key] = r
                self.U[key] = U.permute(1, 0, 2).reshape(U.shape[1], T * r).contiguous()
                self.V[key] = V.permute(1, 0, 2).reshape(V.shape[1], T * r).contiguous()
                self.S[key] = S.contiguous()
                kept = r if base == "task_arithmetic" else linalg.rank_from_fraction(k_frac, r)
                self.initial_kept[key] = kept
                self.logits[key] = initial_logits(T, r, kept, magnitude=logit_init).to(dev).requires_grad_(True)
                if base == "task_arithmetic":
                    self.full[key] = stacked
            elif base == "task_arithmetic":
                self.dense[key] = stacked
            elif key in matrix_set:
                U, S, V = engine.layer(key).centered_svd()  # type: ignore[attr-defined]
                k = linalg.rank_from_fraction(k_frac, int(S.shape[-1]))
                self.dense[key] = linalg.reconstruct(*linalg.truncate(U, S, V, k)).to(dev, torch.float32).clone()
            else:
                assert mean is not None
                self.dense[key] = stacked - mean
        progress(n_keys, n_keys, "prepared")
        width = len(self.keys) if lambda_mode == "layer" else 1
        self.lam = torch.full((T, width), float(lambda_init), device=dev, requires_grad=lambda_mode != "frozen")

    # -- parameters ---------------------------------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def trainable(self) -> list[Tensor]:
        """What the optimiser updates: λ (unless frozen), then the mask logits in ``mask_keys`` order."""
        params = [self.lam] if self.lam.requires_grad else []
        return params + [self.logits[k] for k in self.mask_keys]

    def lambdas(self) -> Tensor:
        """λ as (T, P) in ``keys`` order (expanded when task-wise), clamped if a clamp range is set."""
        lam = self.lam.expand(self.num_tasks, len(self.keys)) if self.lam.shape[1] == 1 else self.lam
        if self.lambda_clamp is not None:
            lam = lam.clamp(*self.lambda_clamp)
        return lam

    def masks(self) -> dict[str, Tensor]:
        """Binary masks (T, r), bool, on the CPU, for every masked key."""
        return {k: hard_mask(v, self.temperature).cpu() for k, v in self.logits.items()}

    def merged_parameters(self) -> dict[str, Tensor]:
        """θ(B, λ) for every floating-point key (float32, on the device), differentiable in λ and the logits."""
        lam = self.lambdas()
        out: dict[str, Tensor] = {}
        for p, key in enumerate(self.keys):
            lam_p = lam[:, p]
            if key in self.logits:
                B = ste_mask(self.logits[key], self.temperature)
                S = self.S[key]
                if self.base == "task_arithmetic":
                    coeff = (lam_p[:, None] * (1.0 - B) * S).reshape(-1)
                    delta = torch.tensordot(lam_p, self.full[key], dims=1) - (self.U[key] * coeff) @ self.V[key].T
                else:
                    coeff = (lam_p[:, None] * B * S).reshape(-1)
                    delta = (self.U[key] * coeff) @ self.V[key].T
            else:
                delta = torch.tensordot(lam_p, self.dense[key], dims=1)
            out[key] = self.constant[key] + delta
        return out

    # -- snapshots ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Tensor]:
        """Detached CPU copies of everything learned: ``lambda`` and ``logit.<key>``."""
        snap = {"lambda": self.lam.detach().cpu().clone()}
        snap.update({f"logit.{k}": v.detach().cpu().clone() for k, v in self.logits.items()})
        return snap

    def load_snapshot(self, snap: Mapping[str, Tensor]) -> None:
        """Copy a :meth:`snapshot` back in place (shapes are checked)."""
        with torch.no_grad():
            pairs = [(self.lam, snap["lambda"])] + [(self.logits[k], snap[f"logit.{k}"]) for k in self.mask_keys]
            for dst, src in pairs:
                if tuple(dst.shape) != tuple(src.shape):
                    raise ParameterError(f"snapshot shape {tuple(src.shape)} does not match {tuple(dst.shape)}")
                dst.copy_(src.to(dst.device, dst.dtype))

    def state_dict(self, snap: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The merged model as a full state dict of the base model's keys (integer buffers copied, dtypes of the
        base), on the CPU, for a snapshot (default: the current parameters). Forward masks are binary."""
        current = self.snapshot() if snap is not None else None
        try:
            if snap is not None:
                self.load_snapshot(snap)
            with torch.no_grad():
                merged = self.merged_parameters()
        finally:
            if current is not None:
                self.load_snapshot(current)
        out: dict[str, Tensor] = {}
        for key, value in self.taskset.base.items():
            out[key] = merged[key].to("cpu", value.dtype) if key in merged else value
        return out


def kept_rank(masks: Mapping[str, Tensor]) -> dict[str, list[int]]:
    """Number of kept components per task for every masked key (AdaRank Fig. 5's row sums)."""
    return {k: [int(x) for x in m.sum(-1)] for k, m in masks.items()}
