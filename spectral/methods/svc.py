"""Singular Value Calibration (SVC; Li et al., ICML 2026, arXiv 2602.05536, Alg. 1) on top of any per-layer merge.

A merge M = U S Vᵀ of one layer over-counts directions that several tasks share (spectral over-accumulation).
SVC measures, for every singular direction u_r of M, how many times each task's own response to u_r is contained in
the merge's response, and divides the singular value by that count:

- a_r = u_rᵀ M (= S_r v_rᵀ) and a_r^t = u_rᵀ Δ_t;
- s_r^t = ⟨a_r, a_r^t⟩ / ‖a_r^t‖² (Eq. 8), taken as ``svc_alpha`` where ‖a_r^t‖ = 0;
- γ_r = T / Σ_t max(svc_alpha, s_r^t); result U diag(γ ⊙ S) Vᵀ.

The responses are computed from the per-task factors Δ_t = A_t S_t B_tᵀ that the engine caches: with
C_t = (Uᵀ A_t) diag(S_t), a_r^t = C_t[r] B_tᵀ, so ‖a_r^t‖ = ‖C_t[r]‖ (B_t has orthonormal columns) and
⟨a_r, a_r^t⟩ = S_r (Vᵀ B_t)[r] · C_t[r]: nothing of size n is formed per direction, and no task matrix is read.

On an isotropic base (Iso-C, Iso-CTS: every singular value equal) M's singular vectors are any orthonormal basis
of a degenerate space, so s_r^t and γ_r depend on the basis the SVD returns (here: the library's thin SVD).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ParameterError
from spectral.methods.base import ALPHA, LayerFactors, Method, Param, ParamValue, as_float

#: per-layer merges offered as SVC's base in the UI (any registered merge, plugins included, is accepted)
PER_LAYER_BASES = ("task_arithmetic", "tsv_m", "iso_c", "iso_cts", "cart", "tsv_low_rank", "weight_average")
#: whole-model bases: calibrated by the engine after the base merged every parameter (not in merge_layer)
BASE_CHOICES = (*PER_LAYER_BASES, "ties", "magmax", "dare", "consensus")


def _registry() -> Mapping[str, Method]:
    from spectral.methods import REGISTRY  # late: this module is imported while the registry is being built

    return REGISTRY


def base_method(name: str, *, per_layer: bool = False) -> Method:
    """The base merge of an SVC run: any registered merging method other than SVC itself; ``per_layer`` requires
    a per-layer one (whole-model bases such as TIES, MagMax, DARE are calibrated by the engine only)."""
    method = _registry().get(name)
    valid = sorted(n for n, m in _registry().items() if m.kind == "merge" and not isinstance(m, CalibratedMethod)
                   and (m.layer_fn is not None or not per_layer))
    if method is None or method.name not in valid:
        extra = " (whole-model methods such as TIES need the whole model: use spectral.Engine)" if per_layer else ""
        raise ParameterError(f"svc: base {name!r} is not a {'per-layer ' if per_layer else ''}merging method; "
                             f"choose one of {valid}{extra}")
    return method


def calibration_coefficients(
    U: Tensor, S: Tensor, V: Tensor, task_factors: linalg.SVD, *, svc_alpha: float = 1.0
) -> Tensor:
    """s_r^t of SVC Eq. 8 for every direction r of the merge M = U diag(S) Vᵀ and every task t: shape (T, R).

    ``task_factors`` are the stacked thin SVDs Δ_t = A_t diag(S_t) B_tᵀ. Where ‖u_rᵀΔ_t‖ is zero (to rounding),
    s_r^t = svc_alpha, as the paper prescribes.
    """
    A, St, B = task_factors
    dtype = torch.float64 if U.dtype == torch.float64 else torch.float32
    U, S, V = U.to(dtype), S.to(dtype), V.to(dtype)
    C = (U.mT.unsqueeze(0) @ A.to(dtype)) * St.to(dtype).unsqueeze(1)  # (T, R, ρ): rows are a_r^t in B_t's basis
    norms2 = (C * C).sum(-1)  # ‖a_r^t‖²
    inner = S.unsqueeze(0) * ((V.mT.unsqueeze(0) @ B.to(dtype)) * C).sum(-1)  # ⟨a_r, a_r^t⟩
    return _coefficients(inner, norms2, St, svc_alpha)


def _coefficients(inner: Tensor, norms2: Tensor, task_sigmas: Tensor, svc_alpha: float) -> Tensor:
    # "zero" relative to each task's own scale: ‖a_r^t‖ ≤ eps·σ₁(Δ_t) is rounding noise, not a response
    scale = task_sigmas.to(norms2.dtype).amax(-1, keepdim=True) if task_sigmas.numel() else norms2.new_zeros(1)
    tiny = (torch.finfo(norms2.dtype).eps * 16 * scale) ** 2
    zero = norms2 <= tiny
    s = inner / torch.where(zero, torch.ones_like(norms2), norms2)
    return torch.where(zero, torch.full_like(s, float(svc_alpha)), s)


def calibration(coefficients: Tensor, svc_alpha: float) -> Tensor:
    """γ_r = T / Σ_t max(svc_alpha, s_r^t) (SVC Alg. 1)."""
    T = coefficients.shape[0]
    return T / coefficients.clamp(min=float(svc_alpha)).sum(0)


@dataclass(frozen=True)
class SVCLayer:
    """Everything the over-accumulation view shows for one layer: the merge's factors, s_r^t and γ_r."""

    U: Tensor
    S: Tensor
    V: Tensor
    coefficients: Tensor  # (T, R)
    gamma: Tensor  # (R,)

    @property
    def calibrated_sigmas(self) -> Tensor:
        return self.gamma * self.S

    def merged(self) -> Tensor:
        return linalg.reconstruct(self.U, self.calibrated_sigmas.to(self.U.dtype), self.V)


def calibrate(layer: LayerFactors, merged: Tensor, svc_alpha: float) -> SVCLayer:
    """SVC of a given merge ``merged`` of ``layer``'s tasks: its thin SVD, s_r^t and γ_r (Alg. 1)."""
    if svc_alpha <= 0:
        raise ParameterError(f"svc: svc_alpha must be positive, got {svc_alpha}")
    U, S, V = linalg.thin_svd(as_float(merged))
    if type(layer) is LayerFactors and "task" not in layer._memo:
        # plain matrices and no factors yet: uᵀΔ_t directly is cheaper than T SVDs
        Δ = as_float(layer.task_matrices).to(U.dtype)
        responses = U.mT.unsqueeze(0) @ Δ  # (T, R, n): a_r^t
        norms2 = (responses * responses).sum(-1)
        inner = (responses * (S.unsqueeze(1) * V.mT).unsqueeze(0)).sum(-1)
        sigma1 = torch.linalg.matrix_norm(Δ).unsqueeze(-1)  # Frobenius ≥ σ₁: a scale for the zero test
        coefficients = _coefficients(inner, norms2, sigma1, svc_alpha)
    else:
        coefficients = calibration_coefficients(U, S, V, layer.task_svd(), svc_alpha=svc_alpha)
    gamma = calibration(coefficients, svc_alpha).to(S.dtype)
    return SVCLayer(U, S, V, coefficients, gamma)


def svc_layer(layer: LayerFactors, base: str, svc_alpha: float, alpha: float, base_params: Mapping[str, Any]) -> SVCLayer:
    """The base merge of ``layer`` (its α applied), its thin SVD and the SVC calibration of its singular values."""
    method = base_method(base, per_layer=True)
    if svc_alpha <= 0:
        raise ParameterError(f"svc: svc_alpha must be positive, got {svc_alpha}")
    return calibrate(layer, method.layer_fn(layer, alpha=alpha, **base_params), svc_alpha)  # type: ignore[misc]


def svc_model(engine: Any, params: Mapping[str, Any], progress: Any) -> dict[str, Tensor]:
    """SVC on a whole-model base (TIES, MagMax, DARE, Consensus): the base's merge of every parameter (its α
    applied), then each matrix parameter calibrated from the engine's cached task factors; the rest unchanged."""
    rest = dict(params)
    base, alpha, svc_alpha = base_method(str(rest.pop("base"))), float(rest.pop("alpha")), float(rest.pop("svc_alpha"))
    assert base.model_fn is not None
    ts = engine.taskset
    merged = base.model_fn(ts.lazy_task_vectors(), alpha=alpha, progress=progress, **rest)
    out: dict[str, Tensor] = {}
    for i, key in enumerate(ts.keys):
        if key in ts.matrix_keys:
            out[key] = calibrate(engine.layer(key), merged[key].to(engine.device), svc_alpha).merged().cpu()
            progress(i + 1, len(ts.keys), f"SVC: {key}")
        else:
            out[key] = merged[key].cpu()
    return out


def svc(layer: LayerFactors, *, alpha: float = 1.0, base: str = "task_arithmetic", svc_alpha: float = 1.0,
        **base_params: Any) -> Tensor:
    """SVC (Li et al. 2026, Alg. 1; Eq. 8): U diag(γ ⊙ S) Vᵀ of the base merge M = U S Vᵀ (its α applied).

    ``base_params`` (k_frac, common_frac, …) go to the base method unchanged.
    """
    return svc_layer(layer, base, svc_alpha, alpha, base_params).merged()


class CalibratedMethod(Method):
    """A method whose parameters are its own plus those of a base method chosen by the ``base`` parameter."""

    def resolve_params(self, params: Mapping[str, Any], num_tasks: int | None = None) -> dict[str, ParamValue]:
        own = {p.name: p for p in self.params}
        base_name = params.get("base") if params.get("base") is not None else own["base"].default
        method = base_method(str(base_name))
        passed = {k: v for k, v in params.items() if k not in own}
        resolved = {"base": method.name}
        for name in ("alpha", "svc_alpha"):
            value = params[name] if params.get(name) is not None else own[name].default_value(num_tasks)
            resolved[name] = own[name].validate(value, self.name)
        try:
            base_resolved = method.resolve_params(passed, num_tasks)
        except ParameterError as err:
            raise ParameterError(f"svc (base {method.name}): {err}") from None
        base_resolved.pop("alpha", None)
        return {**resolved, **base_resolved}

    def non_matrix_rule(self, params: Mapping[str, Any]) -> str:
        return base_method(str(params.get("base", "task_arithmetic"))).non_matrix_rule(params)

    def whole_model(self, params: Mapping[str, Any]) -> bool:
        """True when the base merges the whole model at once: the engine then calls :func:`svc_model`."""
        return base_method(str(params.get("base", "task_arithmetic"))).model_fn is not None

    def model_delta(self, engine: Any, params: Mapping[str, Any], progress: Any) -> dict[str, Tensor]:
        return svc_model(engine, params, progress)


SVC = CalibratedMethod(
    name="svc",
    display_name="SVC",
    paper="Li et al. 2026, When Shared Knowledge Hurts: Spectral Over-Accumulation in Model Merging (Alg. 1)",
    params=(
        # α of the base merge, applied before calibration (SVC rescales what the base method produced)
        Param(**{**ALPHA.__dict__, "help": "Scaling of the base merge, applied before calibration."}),
        Param("base", "task_arithmetic", "choice", choices=BASE_CHOICES, label="base merge",
              help="The merge whose singular values are calibrated; its own parameters pass through."),
        Param("svc_alpha", 1.0, "float", 0.05, 20.0, 0.05, label="calibration floor α_svc",
              help="γ_r = T / Σ_t max(α_svc, s_r^t): coefficients below the floor count as α_svc (paper: 1)."),
    ),
    layer_fn=svc,
    non_matrix="sum",  # resolved per run from the base method: see non_matrix_rule
    alpha_form="nonlinear",
    description="Rescale the base merge's singular values by how often the tasks' responses are counted in them.",
)
