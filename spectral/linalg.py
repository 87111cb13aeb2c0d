"""Shared linear-algebra building blocks: thin SVD, truncation, polar factor, whitening, devices.

Conventions (docs/contributing.md, "Math conventions"): one layer's task matrix Δ has shape (m, n), r = min(m, n); a thin SVD is
returned as ``(U, S, V)`` with ``U: (..., m, r)``, ``S: (..., r)`` descending, ``V: (..., n, r)`` so that
``Δ = U diag(S) Vᵀ``. V (not Vᴴ) is returned because every method concatenates right singular vectors as columns.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import torch
from torch import Tensor

from spectral.errors import ShapeMismatchError

SVD = tuple[Tensor, Tensor, Tensor]
_T = TypeVar("_T")
_R = TypeVar("_R")

log = logging.getLogger(__name__)

#: The Gram route (eigendecomposition of XᵀX in float64) is used only while every kept eigenvalue is at least this
#: fraction of the largest. Its error is about eps64 · λ_max / λ_i (1e-16 · 1e10 = 1e-6 of the smallest kept
#: component at the limit), far below the float32 rounding of the inputs; below it the SVD is used instead.
GRAM_RCOND = 1e-10

#: Switch for the Gram routes of :func:`polar_factor` and :func:`top_singular_triplets`. Turning it off gives the
#: plain SVD implementation (the reference the tests and ``bench/engine.py --no-gram`` compare against).
USE_GRAM = True

#: How :func:`thin_svd` decomposes float32 matrices on a CUDA device: ``"gram"`` (:func:`gram_thin_svd`, an n×n
#: eigh in float64 with an exactness test and a fallback) or ``"gesvd"`` (cuSOLVER's QR-based SVD). Measured on
#: an H200 for a 4096×1024 float32 matrix (``bench/gpu.py --only svd``): Gram 12.4 ms with singular values within
#: 4e-8 of σ₁ of a float64 SVD; gesvd 133 ms, 1.7e-5; torch's default driver (gesvdj) 58.5 ms, 1.6e-4, far from
#: float32 precision, which is why no route here uses it. The CPU always uses LAPACK's SVD.
CUDA_SVD_ROUTE = "gram"


#: Most worker threads :func:`map_tasks` uses on the CPU (each runs torch single-threaded); 1 turns the split off
TASK_THREADS = 8

_task_pools: dict[int, ThreadPoolExecutor] = {}
_task_pools_lock = threading.Lock()


def map_tasks(fn: Callable[[_T], _R], items: Iterable[_T], *, device: torch.device | str = "cpu") -> list[_R]:
    """``[fn(x) for x in items]``, with independent per-task work shared out over the CPU's threads.

    LAPACK's eigh and SVD use two cores poorly at the sizes of one layer (a float64 768×768 eigh: 71 ms on one
    core, 41 ms on two, where a matrix product is twice as fast on two), so on the CPU the items run side by side
    on up to ``torch.get_num_threads()`` workers that each run torch single-threaded: two 768×768 eighs then take
    35 ms each instead of 41. The calling thread keeps its own thread count. On other devices, with one thread,
    or with one item, ``fn`` runs in the caller. ``fn`` must not call :func:`map_tasks` itself.
    """
    items = list(items)
    workers = min(torch.get_num_threads(), TASK_THREADS, len(items))
    if torch.device(device).type != "cpu" or workers < 2:
        return [fn(x) for x in items]
    with _task_pools_lock:
        pool = _task_pools.get(workers)
        if pool is None:
            pool = _task_pools[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix="spectral-task", initializer=torch.set_num_threads, initargs=(1,))
    return list(pool.map(fn, items))


def exact_svd(x: Tensor) -> SVD:
    """``torch.linalg.svd(x, full_matrices=False)`` as ``(U, S, Vh)``, with cuSOLVER's QR-based driver on CUDA.

    On CUDA torch's default driver is the Jacobi method (gesvdj), which measured 1e-4 relative errors on
    float32 ViT-sized matrices; gesvd is the accurate one.
    """
    if x.is_cuda:
        return torch.linalg.svd(x, full_matrices=False, driver="gesvd")
    return torch.linalg.svd(x, full_matrices=False)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def thin_svd(matrices: Tensor) -> SVD:
    """Thin SVD of one matrix or a batch ``(..., m, n)``, as ``(U, S, V)``.

    LAPACK is about twice as fast on the tall orientation on CPU (measured here: 16.5 s vs 35.7 s for a batch of
    768×3072), so a wide matrix is decomposed through its transpose and U, V are swapped.
    """
    if matrices.ndim < 2:
        raise ShapeMismatchError(f"thin_svd needs a matrix, got a tensor of shape {tuple(matrices.shape)}")
    m, n = matrices.shape[-2:]
    if m < n:
        U_t, S, V_t = thin_svd(matrices.mT)
        return V_t, S, U_t
    if matrices.is_cuda and matrices.dtype == torch.float32:
        if CUDA_SVD_ROUTE == "gram":
            return gram_thin_svd(matrices)
        U, S, Vh = exact_svd(matrices.double())  # cuSOLVER's float32 SVDs miss float32 precision
        return U.float(), S.float(), Vh.mT.float()
    U, S, Vh = exact_svd(matrices)
    return U, S, Vh.mT


def gram_thin_svd(matrices: Tensor) -> SVD:
    """Thin SVD of tall matrices ``(..., m, n)``, m ≥ n, from the eigendecomposition of their Gram in float64.

    ``AᵀA = V Λ Vᵀ`` gives ``S = √Λ`` and ``U = A V S⁻¹``; one Cholesky-QR pass (``U ← U L⁻ᵀ`` with
    ``UᵀU = L Lᵀ``) then restores U's orthonormality where the small components lost digits. The result is the
    SVD, not an approximation, and is accepted per matrix only where it meets float32 precision: every
    eigenvalue above ``GRAM_RCOND`` · the largest (condition number below 1e5, where the Gram's float64 round-off
    stays under float32 rounding) and ``|UᵀU − I|``, ``|A − U S Vᵀ| / ‖A‖`` within :func:`default_rtol`.
    Other matrices are decomposed by LAPACK's SVD (on CUDA: cuSOLVER's gesvd in float64, see :func:`exact_svd`).

    On a GPU one n×n ``eigh`` and three m×n×n products replace cuSOLVER's iterative SVD of the m×n matrix
    (``bench/gpu.py --only svd`` measures both); on the CPU LAPACK's SVD is used instead (:data:`CUDA_SVD_ROUTE`).
    """
    m, n = matrices.shape[-2:]
    if m < n:
        raise ShapeMismatchError(f"gram_thin_svd needs tall matrices (m ≥ n), got {m}×{n}")
    A = matrices.to(torch.float64)
    eigvals, V = torch.linalg.eigh(A.mT @ A)
    eigvals, V = eigvals.flip(-1), V.flip(-1)
    well_conditioned = eigvals[..., -1] > GRAM_RCOND * eigvals[..., 0]
    S = eigvals.clamp_min(torch.finfo(torch.float64).tiny).sqrt()
    U = (A @ V) / S.unsqueeze(-2)
    L, info = torch.linalg.cholesky_ex(U.mT @ U)
    U = torch.linalg.solve_triangular(L.mT, U, upper=True, left=False)
    rtol = default_rtol(n, matrices.dtype)
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    orth_err = (U.mT @ U - eye).abs().amax((-2, -1))
    rebuilt = (U * S.unsqueeze(-2)) @ V.mT
    resid = (A - rebuilt).abs().amax((-2, -1)) / A.abs().amax((-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)
    ok = well_conditioned & (info == 0) & (orth_err <= rtol) & (resid <= rtol)
    U, S, V = U.to(matrices.dtype), S.to(matrices.dtype), V.to(matrices.dtype)
    if not bool(ok.all()):
        flat_ok = ok.reshape(-1)
        bad = (~flat_ok).nonzero().flatten()
        log.debug("gram_thin_svd: %d of %d %d×%d matrices fall back to the SVD", bad.numel(), flat_ok.numel(), m, n)
        Uf, Sf, Vf = U.reshape(-1, m, n), S.reshape(-1, n), V.reshape(-1, n, n)
        hard = matrices.reshape(-1, m, n)[bad]
        Ub, Sb, Vhb = exact_svd(hard.double() if hard.is_cuda else hard)
        Uf[bad], Sf[bad], Vf[bad] = Ub.to(U.dtype), Sb.to(S.dtype), Vhb.mT.to(V.dtype)
    return U, S, V


def truncate(U: Tensor, S: Tensor, V: Tensor, k: int) -> SVD:
    """Keep the top-k singular triplets (factors sorted descending, as thin_svd returns them)."""
    return U[..., :k], S[..., :k], V[..., :k]


def reconstruct(U: Tensor, S: Tensor, V: Tensor) -> Tensor:
    """``U diag(S) Vᵀ`` (batched)."""
    return (U * S.unsqueeze(-2)) @ V.mT


def rank_from_fraction(frac: float, r: int) -> int:
    """``k = int(frac · r)``, at least 1 and at most r (TSV's rule for k = r/T, Alg. 1)."""
    return max(1, min(r, int(frac * r)))


def numerical_rank(S: Tensor, shape: tuple[int, int]) -> int:
    """Number of singular values above ``σ_max · max(m, n) · eps`` (NumPy's matrix_rank tolerance).

    Singular vectors of the components below it are arbitrary (any orthonormal completion), so methods drop them
    before orthogonalising; for the full-rank task matrices of real checkpoints nothing is dropped.
    """
    if S.numel() == 0:
        return 0
    s_max = float(S.max())
    if s_max == 0.0:
        return 0
    tol = s_max * max(shape) * torch.finfo(S.dtype).eps
    return int((S > tol).sum())


def polar_factor(X: Tensor, *, dtype: torch.dtype = torch.float64, use_gram: bool | None = None) -> Tensor:
    """Orthogonal polar factor ``P Qᵀ`` of ``X = P D Qᵀ`` (Procrustes, TSV Eq. 8).

    The nearest matrix with orthonormal columns to X in Frobenius norm. Computed in ``dtype`` (float64 by default:
    the concatenated singular vectors of related tasks are nearly parallel, where float32 loses the small
    directions) and returned in X's dtype. When X has more columns than rows (Tk > r) the result is the polar
    factor of its rank-r part: P Qᵀ has orthonormal rows instead of columns.

    For a tall X of full column rank the factor is computed as ``X (XᵀX)^{-1/2}`` from the eigendecomposition of
    the p×p Gram in float64 (the same map, TSV Prop. 4.1): one m×p×p product and a p×p eigh instead of an m×p
    SVD (about 3× cheaper on 2 CPU cores for a 3072×768 matrix). It is exact, not an approximation:
    where every eigenvalue of the Gram is above ``GRAM_RCOND`` · the largest (condition number of X below 1e5) its
    float64 round-off stays below float32 precision; up to ``POLAR_GRAM_RCOND`` (condition 3.2e5) the result must
    have orthonormal columns to float32 precision, after at most two Newton–Schulz steps (:func:`_polish_polar`).
    Otherwise, and for X with more columns than rows, the SVD route is used. ``use_gram=False`` forces the SVD
    route (default: ``USE_GRAM``).
    """
    m, p = X.shape[-2:]
    if (USE_GRAM if use_gram is None else use_gram) and 0 < p <= m:
        Xd = X.to(dtype)
        gram = Xd.mT @ Xd
        eigvals, Q = torch.linalg.eigh(gram)
        ratio = eigvals[..., :1] / eigvals[..., -1:]
        if bool((ratio > POLAR_GRAM_RCOND).all()):
            inv_sqrt = (Q * eigvals.rsqrt().unsqueeze(-2)) @ Q.mT
            P = Xd @ inv_sqrt
            if bool((ratio > GRAM_RCOND).all()) or _polish_polar(P, default_rtol(p, X.dtype)):
                return P.to(X.dtype)
        log.debug("polar_factor: the Gram of a %d×%d matrix is too ill-conditioned; using the SVD", m, p)
    P, _, Qh = exact_svd(X.to(dtype))
    return (P @ Qh).to(X.dtype)


#: :func:`polar_factor` tries its Gram route up to this eigenvalue ratio of XᵀX (condition of X below 3.2e5),
#: checking the result where the ratio is below :data:`GRAM_RCOND`
POLAR_GRAM_RCOND = 1e-11


def _polish_polar(P: Tensor, rtol: float, steps: int = 2) -> bool:
    """Bring P = X (XᵀX)^{-1/2} from a poorly conditioned Gram to orthonormal columns within ``rtol`` (in place),
    or report that it cannot.

    The Gram's float64 round-off E (about eps64 · σ₁²) perturbs P by up to eps64 · κ² in the directions of the
    small singular values. Its symmetric part shows as |PᵀP − I| and Newton–Schulz steps P ← P (3I − PᵀP) / 2
    remove it quadratically. Its skew part, which no test sees, is bounded by the same eps64 · κ², so
    :data:`POLAR_GRAM_RCOND` keeps κ below 3.2e5, where that bound is 1e-5 (a float32 SVD of X would be off by
    eps32 · κ, 100 times more). On the polar steps of ``bench/engine.py --full-rank`` with κ between 1.6e5 and
    2.8e5, the result was within 1.2e-8 of the float64 SVD's polar factor with no step needed. It took half
    the time of the SVD it replaces.
    """
    eye = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)
    for step in range(steps + 1):
        C = P.mT @ P
        if float((C - eye).abs().max()) <= rtol:
            return True
        if step < steps:
            P.copy_(P @ (1.5 * eye - 0.5 * C))
    return False


def whiten(X: Tensor, *, eps: float = 1e-12, dtype: torch.dtype = torch.float64) -> Tensor:
    """Whitening ``X (XᵀX)^{-1/2}`` by eigendecomposition (TSV §4.2 and App. D.2.1).

    Mathematically equal to :func:`polar_factor` (TSV Prop. 4.1). Following App. D.2.1, Λ^{-1/2} is taken as
    ``1 / (sqrt(|λ|) + eps)`` so that round-off eigenvalues slightly below zero do not produce NaN.
    """
    Xd = X.to(dtype)
    gram = Xd.mT @ Xd
    eigvals, Q = torch.linalg.eigh(gram)
    inv_sqrt = 1.0 / (eigvals.abs().sqrt() + eps)
    return (Xd @ ((Q * inv_sqrt.unsqueeze(-2)) @ Q.mT)).to(X.dtype)


def orthogonalise(X: Tensor, how: str = "procrustes") -> Tensor:
    """Dispatch to :func:`polar_factor` (``"procrustes"``) or :func:`whiten` (``"whitening"``)."""
    if how == "procrustes":
        return polar_factor(X)
    if how == "whitening":
        return whiten(X)
    raise ValueError(f"unknown orthogonalisation {how!r}; expected 'procrustes' or 'whitening'")


def svd_of_factored(left: Tensor, right_orthonormal: Tensor) -> SVD:
    """Thin SVD of ``left @ right_orthonormalᵀ`` without forming it.

    ``left`` is (m, ρ) and ``right_orthonormal`` (n, ρ) has orthonormal columns. With ``left = P D Qᵀ`` the
    product is ``P D (right Q)ᵀ`` and ``right Q`` still has orthonormal columns, so only an m×ρ SVD is needed:
    a large saving when ρ is the (small) numerical rank of a cached factorisation.
    """
    P, D, Q = thin_svd(left)
    return P, D, right_orthonormal @ Q


def top_singular_triplets(
    C: Tensor, s: int, *, rank_rtol: float = 0.0, rtol: float | None = None, dtype: torch.dtype = torch.float64
) -> tuple[SVD, bool]:
    """The top-s singular triplets ``(U (m, s'), S (s',), V (p, s'))`` of one m×p matrix C, and whether they
    came from the fast route (False: the full SVD was used).

    Components with σ_i ≤ ``rank_rtol`` · σ_1 are numerically zero and left out (s' ≤ s), as
    :func:`numerical_rank` does: their singular vectors are an arbitrary completion.

    Fast route: the eigendecomposition of the Gram on C's smaller side (CᵀC for a tall C), formed and decomposed
    in float64; the top eigenpairs (λ_i, q_i) give σ_i = √λ_i, v_i = q_i and u_i = C q_i / σ_i. This is the exact
    SVD, not an approximation, and costs one m×p×p product and one p×p eigh instead of an m×p SVD (Iso-CTS
    needs the top-s triplets of T residuals per layer at every common_frac, Iso Alg. 2 l. 6-8).

    Acceptance test: the triplet residuals ``‖Cᵀu_i − σ_i v_i‖ = ‖G q_i − λ_i q_i‖ / σ_i`` must be at most
    ``rtol`` · σ_1, and ``|u_iᵀu_j − δ_ij| = |q_iᵀ G q_j / (σ_i σ_j) − δ_ij|`` at most ``rtol`` (default rtol =
    10 · √p · eps of C's dtype: float32 precision for float32 C); and every returned λ_i must be above
    ``GRAM_RCOND`` · λ_1 (below it the Gram's float64 round-off could exceed float32 precision). Where a test
    fails, the full SVD of C is used instead and the fallback is logged (``rtol=0`` forces it). With
    ``USE_GRAM`` off the full SVD is used directly.
    """
    if C.ndim != 2:
        raise ShapeMismatchError(f"top_singular_triplets takes one matrix, got shape {tuple(C.shape)}")
    if C.shape[1] > C.shape[0]:  # the Gram on the smaller side
        (V, S, U), fast = _top_triplets_tall(C.mT, s, rank_rtol, rtol, dtype)
        return (U, S, V), fast
    return _top_triplets_tall(C, s, rank_rtol, rtol, dtype)


def _top_triplets_tall(C: Tensor, s: int, rank_rtol: float, rtol: float | None, dtype: torch.dtype) -> tuple[SVD, bool]:
    m, p = C.shape
    s = max(0, min(s, p))
    if rtol is None:
        rtol = default_rtol(p, C.dtype)
    if USE_GRAM and s > 0:
        Cd = C.to(dtype)
        found = top_gram_eigenpairs(Cd.mT @ Cd, s, rank_rtol=rank_rtol, rtol=rtol, what=f"{m}×{p}")
        if found is not None:
            lam, Qs = found
            if lam.numel() == 0:
                return (C.new_zeros(m, 0), C.new_zeros(0), C.new_zeros(p, 0)), True
            sig = lam.sqrt()
            Us = (Cd @ Qs) / sig
            return (Us.to(C.dtype), sig.to(C.dtype), Qs.to(C.dtype)), True
    U, S, V = thin_svd(C)
    keep = min(s, int((S > rank_rtol * S[0]).sum())) if S.numel() and float(S[0]) > 0 else 0
    return (U[:, :keep], S[:keep], V[:, :keep]), False


def default_rtol(p: int, dtype: torch.dtype) -> float:
    """Float32 precision for a triplet test on a p-column matrix of ``dtype``: 10 · √p · eps."""
    return 10.0 * max(p, 1) ** 0.5 * torch.finfo(dtype).eps


def top_gram_eigenpairs(
    gram: Tensor, s: int, *, rank_rtol: float = 0.0, rtol: float, what: str = ""
) -> tuple[Tensor, Tensor] | None:
    """The top-s eigenpairs ``(λ (s',) descending, Q (p, s'))`` of the float64 Gram ``G = CᵀC`` of some matrix C,
    accepted as C's top singular triplets (σ_i = √λ_i, v_i = q_i, u_i = C q_i / σ_i) only if they pass the test
    of :func:`top_singular_triplets`; None where they do not (the caller then uses the full SVD of C).

    Components with σ_i ≤ ``rank_rtol`` · σ_1 are left out (s' ≤ s). Where s is a small part of p
    (s ≤ ``KRYLOV_MAX_FRAC`` · p, p ≥ ``KRYLOV_MIN_SIZE``) the pairs come from :func:`top_eigenpairs` (block Krylov,
    certified), else, or where that does not converge, from the full ``eigh``.
    """
    p = gram.shape[-1]
    s = max(0, min(s, p))
    if s == 0:
        return gram.new_zeros(0), gram.new_zeros(p, 0)

    def tolerance(lam: Tensor) -> Tensor:
        # ‖G q − λ q‖ ≤ rtol · σ_i · σ_1 is ‖Cᵀu − σv‖ ≤ rtol · σ_1, the acceptance test below; Krylov is asked
        # for ten times less, so that its vectors (error ≈ residual / gap) are as good as the dense route's
        return 0.1 * rtol * (lam.clamp(min=0.0) * lam[:1].clamp(min=0.0)).sqrt()

    found = None
    if KRYLOV_MIN_SIZE <= p and 0 < s <= KRYLOV_MAX_FRAC * p:
        found = top_eigenpairs(gram, s, tolerance=tolerance)
        if found is None:
            log.info("top_gram_eigenpairs: %s, s=%d: block Krylov did not converge; using eigh", what, s)
    if found is None:
        eigvals, Q = torch.linalg.eigh(gram)  # ascending
        lam, Qs, lam_max = eigvals.flip(-1)[:s], Q.flip(-1)[:, :s], float(eigvals[-1])
    else:
        lam, Qs = found
        lam_max = float(lam[0])
    sig = lam.clamp(min=0.0).sqrt()
    keep = int((sig > rank_rtol * sig[0]).sum()) if lam_max > 0.0 else 0
    if keep == 0:
        return gram.new_zeros(0), gram.new_zeros(p, 0)
    lam, Qs, sig = lam[:keep], Qs[:, :keep], sig[:keep]
    if float(lam[-1]) <= GRAM_RCOND * lam_max:
        # Components too small for the Gram's precision are asked for: expected for matrices that are not
        # full rank when rank_rtol is below √GRAM_RCOND; the SVD decides them.
        log.info("top_singular_triplets: %s, s=%d: σ_s/σ_1 below the Gram's accuracy; using the full SVD", what, s)
        return None
    GQ = gram @ Qs
    resid = float((torch.linalg.vector_norm(GQ - Qs * lam, dim=0) / sig).max()) / float(sig[0])
    eye = torch.eye(keep, dtype=gram.dtype, device=gram.device)
    ortho = float(((Qs.mT @ GQ) / (sig[:, None] * sig[None, :]) - eye).abs().max())
    if resid <= rtol and ortho <= rtol:
        return lam, Qs
    log.warning("top_singular_triplets: %s, s=%d: residual %.2e or orthogonality error %.2e above rtol %.2e; "
                "using the full SVD", what, s, resid, ortho, rtol)
    return None


#: :func:`top_gram_eigenpairs` tries the block Krylov solver when s ≤ this fraction of the Gram's size ...
KRYLOV_MAX_FRAC = 0.05
#: ... and the Gram is at least this large (below, ``eigh`` costs next to nothing)
KRYLOV_MIN_SIZE = 256


def top_eigenpairs(
    G: Tensor,
    s: int,
    *,
    tolerance: Callable[[Tensor], Tensor],
    oversample: int = 8,
    max_dim: int | None = None,
    start: Tensor | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor] | None:
    """Top-s eigenpairs ``(λ (s,) descending, Q (n, s))`` of a symmetric positive semi-definite G by randomised
    block Krylov iteration with Rayleigh–Ritz (Musco & Musco 2015), or None where it does not converge.

    The Krylov space [X, GX, G²X, …] grows by blocks of b = s + ``oversample`` columns (X seeded Gaussian, or
    ``start``), kept orthonormal by two passes of block Gram–Schmidt, until every one of the top-s Ritz pairs has
    ``‖G q_i − λ_i q_i‖ ≤ tolerance(λ)_i`` or the space would exceed ``max_dim`` (default n/2, where the dense
    ``eigh`` is cheaper): then None.

    Converged pairs are accurate, but Krylov iteration could in principle miss an eigenvalue whose vector the start
    block barely contains. A certificate rules that out: with the found pairs deflated, G′ = G − Q diag(λ) Qᵀ, the
    Cholesky factorisation of ``τ I − G′`` at ``τ = λ_s − margin`` (margin: twice the largest residual plus the
    Cholesky's round-off) must succeed, which proves that no other eigenvalue of G reaches τ, so the found
    eigenvalues are the s largest (Cauchy interlacing for the rank-s deflation). Where λ_s and λ_{s+1} are closer
    than the margin the certificate fails and None is returned: the caller then takes the dense route.
    """
    n = G.shape[-1]
    if G.ndim != 2 or G.shape[0] != n:
        raise ShapeMismatchError(f"top_eigenpairs takes one square matrix, got shape {tuple(G.shape)}")
    s = max(0, min(s, n))
    max_dim = n // 2 if max_dim is None else max_dim
    b = min(n, s + oversample)
    if s == 0 or b > max_dim:
        return None
    if start is None:
        start = torch.randn(n, b, generator=torch.Generator().manual_seed(seed), dtype=G.dtype).to(G.device)
    W = torch.linalg.qr(start.to(G.dtype))[0]
    Qs: list[Tensor] = []
    GQs: list[Tensor] = []
    while True:
        GW = G @ W
        Qs.append(W)
        GQs.append(GW)
        Q, GQ = torch.cat(Qs, 1), torch.cat(GQs, 1)
        H = Q.mT @ GQ
        theta, Z = torch.linalg.eigh((H + H.mT) / 2)
        lam, Z = theta.flip(-1)[:s], Z.flip(-1)[:, :s]
        V, GV = Q @ Z, GQ @ Z
        resid = torch.linalg.vector_norm(GV - V * lam, dim=0)
        if bool((resid <= tolerance(lam)).all()) and float(lam[-1]) > 0.0:
            return (lam, V) if _top_certified(G, lam, V, float(resid.max())) else None
        if Q.shape[1] + b > max_dim:
            return None
        W = GW - Q @ (Q.mT @ GW)
        W = W - Q @ (Q.mT @ W)
        W, R = torch.linalg.qr(W)
        if float(R.diagonal().abs().min()) <= n * torch.finfo(G.dtype).eps * float(R.diagonal().abs().max()):
            return None  # the Krylov space stopped growing (G has low rank): the dense route decides


def _top_certified(G: Tensor, lam: Tensor, V: Tensor, resid_max: float) -> bool:
    """No eigenvalue of G outside the found pairs reaches λ_s − margin (see :func:`top_eigenpairs`)."""
    n = G.shape[-1]
    margin = 2.0 * resid_max + 8.0 * n * torch.finfo(G.dtype).eps * float(lam[0])
    tau = float(lam[-1]) - margin
    if tau <= 0.0:
        return False
    deflated = G - (V * lam) @ V.mT
    shifted = -deflated
    shifted.diagonal().add_(tau)
    _, info = torch.linalg.cholesky_ex(shifted)
    return int(info) == 0
