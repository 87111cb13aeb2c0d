"""What every merging method declares, and the per-layer inputs it computes from.

A method is a pure function over one layer's task matrices. It does not take the matrices directly but a
:class:`LayerFactors`, which hands out the decompositions the method needs (per-task SVDs, the SVD of Σ_t Δ_t,
the SVDs of the CART-centred matrices). :class:`ExactLayerFactors` computes them on first use;
the engine passes a subclass that reads them from the SVD cache, so one implementation of each method's math
serves both the public ``merge_layer`` and the cached engine, and no SVD of a task matrix is ever recomputed
because k_frac, common_frac or alpha changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Protocol

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ParameterError, ShapeMismatchError

ParamValue = float | int | str | bool


@dataclass(frozen=True)
class Param:
    """A typed method parameter with its default and valid range, from which the UI builds a widget."""

    name: str
    default: ParamValue
    kind: Literal["float", "int", "choice", "bool"] = "float"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    label: str = ""
    #: a default that depends on the task count (e.g. k_frac = 1/T); called with T when the user gives none
    default_for_tasks: Callable[[int], ParamValue] | None = None
    #: the integer sizes the merge uses at a value, for a layer of rank r and T tasks (``{"k": int(v·r)}``);
    #: declared by rank parameters so the UI can show them and snap to values that change the merge
    effective: Callable[[float, int, int], Mapping[str, int]] | None = None

    def default_value(self, num_tasks: int | None) -> ParamValue:
        if self.default_for_tasks is not None and num_tasks is not None:
            return self.default_for_tasks(num_tasks)
        return self.default

    def validate(self, value: Any, method: str) -> ParamValue:
        where = f"{method}: parameter {self.name!r}"
        if self.kind == "choice":
            if value not in self.choices:
                raise ParameterError(f"{where} must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ParameterError(f"{where} must be true or false, got {value!r}")
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where} must be a number, got {value!r}") from None
        if number != number:  # NaN
            raise ParameterError(f"{where} must be a number, got NaN")
        if self.low is not None and number < self.low:
            raise ParameterError(f"{where} = {value} is below its minimum {self.low}")
        if self.high is not None and number > self.high:
            raise ParameterError(f"{where} = {value} is above its maximum {self.high}")
        if self.kind == "int":
            if number != int(number):
                raise ParameterError(f"{where} must be a whole number, got {value!r}")
            return int(number)
        return number


ALPHA = Param(
    "alpha", 1.0, "float", 0.0, 3.0, 0.05, label="α (scaling)",
    help="Scaling of the merged task matrix: θ = θ₀ + α·Δ_merged.",
)


#: float32's machine epsilon: the rank cut's tolerance is that of the checkpoints' precision, whatever the compute dtype
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)

RANK_CUT_CHOICES = ("all", "numerical")


def rank_tolerance(shape: tuple[int, int]) -> float:
    """The numerical rank cut's tolerance relative to σ₁: ``max(m, n) · eps(float32)`` (NumPy's matrix_rank rule at
    the float32 precision of the checkpoints; the same cut in a float64 run, so float64 runs are references of the
    float32 ones rather than another method)."""
    return max(shape) * FLOAT32_EPS


def kept_rank(S: Tensor, shape: tuple[int, int], rank_cut: str) -> int:
    """How many of the descending singular values ``S`` a method keeps under ``rank_cut``.

    ``"all"`` (the Iso and TSV authors' code, FusionBench): every one of them. ``"numerical"``: those above
    ``σ₁ · rank_tolerance(shape)``; the directions below it are float32 round-off of a rank-deficient matrix, and
    their singular vectors are an arbitrary completion of the basis.
    """
    if rank_cut == "all":
        return int(S.shape[-1])
    if rank_cut != "numerical":
        raise ParameterError(f"rank_cut must be one of {list(RANK_CUT_CHOICES)}, got {rank_cut!r}")
    if S.numel() == 0:
        return 0
    s_max = float(S.max())
    if s_max == 0.0:
        return 0
    return int((S > s_max * rank_tolerance(shape)).sum())


def rank_cut_param(default: str) -> Param:
    """The ``rank_cut`` parameter of the spectral methods (issue 28)."""
    return Param(
        "rank_cut", default, "choice", choices=RANK_CUT_CHOICES, label="rank cut",
        help="'all': keep every direction, as the authors' code and FusionBench do (directions of a numerically "
             "rank-deficient matrix, whose singular vectors are arbitrary, are kept too). 'numerical': drop the "
             "directions below σ₁·max(m, n)·eps(float32).",
    )


class LayerFactors:
    """The decompositions of ONE layer's task matrices that methods read, computed lazily.

    ``task_matrices`` is the stacked (T, m, n) tensor of Δ_t. Subclasses (the engine's cached layer) override
    the ``*_svd`` methods to return stored factors; the contract is the output of :func:`spectral.linalg.thin_svd`.
    """

    def __init__(self, task_matrices: Tensor | None) -> None:
        self._memo: dict[str, Any] = {}
        self._task_matrices = task_matrices
        if task_matrices is None:  # a subclass supplies them lazily
            return
        if task_matrices.ndim != 3:
            raise ShapeMismatchError(
                f"task_matrices must be stacked as (T, m, n); got shape {tuple(task_matrices.shape)}"
            )
        if task_matrices.shape[0] == 0:
            raise ShapeMismatchError("task_matrices is empty (T = 0): merging needs at least one task")

    def _memoised(self, name: str, compute: Callable[[], linalg.SVD]) -> linalg.SVD:
        # A per-instance memo (not functools.cache, which would keep every layer alive for the process).
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]

    @property
    def task_matrices(self) -> Tensor:
        assert self._task_matrices is not None
        return self._task_matrices

    @property
    def num_tasks(self) -> int:
        return int(self.task_matrices.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        m, n = self.task_matrices.shape[-2:]
        return int(m), int(n)

    @property
    def rank(self) -> int:
        return min(self.shape)

    def task_svd(self) -> linalg.SVD:
        """Batched thin SVD of every Δ_t: U (T, m, r), S (T, r), V (T, n, r)."""
        return self._memoised("task", lambda: linalg.thin_svd(self.task_matrices))

    def sum_svd(self) -> linalg.SVD:
        """Thin SVD of Δ_TA = Σ_t Δ_t (Iso Alg. 1, line 2)."""
        return self._memoised("sum", lambda: linalg.thin_svd(self.task_matrices.sum(0)))

    def centered_svd(self) -> linalg.SVD:
        """Batched thin SVD of Δ_t − mean_s Δ_s, CART's task vectors relative to the weight average."""
        return self._memoised(
            "centered",
            lambda: linalg.thin_svd(self.task_matrices - self.task_matrices.mean(0, keepdim=True)),
        )

    def derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """A quantity a method derives from this layer's factors that no slider changes (e.g. Iso-CTS's
        k-independent residual Grams), computed once by ``compute``. Here it lives as long as this object; the
        engine's layers keep it across merges, within a memory budget (:class:`spectral.engine.Engine`)."""
        key = f"derived:{name}"
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


ExactLayerFactors = LayerFactors


class LayerMergeFn(Protocol):
    def __call__(self, layer: LayerFactors, *, alpha: float, **params: Any) -> Tensor: ...


class ModelMergeFn(Protocol):
    def __call__(self, task_vectors: Mapping[str, Tensor], *, alpha: float, **params: Any) -> dict[str, Tensor]: ...


@dataclass(frozen=True)
class Method:
    """A registered merging (or compression) method.

    ``layer_fn`` merges one matrix layer; ``model_fn`` (TIES, Consensus) needs every parameter of the model at
    once. ``non_matrix`` says how parameters that are not matrices are merged (docs/contributing.md, "Math conventions"): ``"sum"`` → α·Σ_t,
    ``"alpha_mean"`` → α·mean_t, ``"mean"`` → mean_t.
    """

    name: str
    display_name: str
    paper: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    layer_fn: LayerMergeFn | None = None
    model_fn: ModelMergeFn | None = None
    non_matrix: Literal["sum", "alpha_mean", "mean"] = "alpha_mean"
    kind: Literal["merge", "compress"] = "merge"
    description: str = ""
    #: how the result depends on alpha: "linear" (α·f), "affine" (f₀ + α·f₁, e.g. CART), "none" (ignored),
    #: "nonlinear" (e.g. SVC: alpha is part of the merge; every alpha is a new merge).
    #: The engine uses it to answer an alpha-only change with one fused add instead of a re-merge.
    alpha_form: Literal["linear", "affine", "none", "nonlinear"] = "linear"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def non_matrix_rule(self, params: Mapping[str, Any]) -> str:
        """How non-matrix parameters are merged for these (resolved) parameters; SVC defers to its base."""
        return self.non_matrix

    def resolve_params(self, params: Mapping[str, Any], num_tasks: int | None = None) -> dict[str, ParamValue]:
        """Defaults filled in, every value validated; unknown names are an error naming the valid ones."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ParameterError(
                f"{self.name}: unknown parameter(s) {unknown}; valid parameters are {sorted(known)}"
            )
        resolved: dict[str, ParamValue] = {}
        for p in self.params:
            value = params[p.name] if p.name in params and params[p.name] is not None else p.default_value(num_tasks)
            resolved[p.name] = p.validate(value, self.name)
        return resolved


def merge_non_matrix(rule: str, stacked: Tensor, alpha: float) -> Tensor:
    """Merge a stacked (T, ...) non-matrix parameter by a method's ``non_matrix`` rule."""
    if rule == "sum":
        return alpha * stacked.sum(0)
    if rule == "alpha_mean":
        return alpha * stacked.mean(0)
    if rule == "mean":
        return stacked.mean(0)
    raise ValueError(f"unknown non-matrix rule {rule!r}")


def as_float(x: Tensor) -> Tensor:
    """Methods compute in float32 (or float64 if given): half-precision checkpoints are upcast first."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()
