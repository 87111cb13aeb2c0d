"""Task Singular Vectors: TSV-C compression and TSV-M merging (Gargiulo et al., CVPR 2025)."""
from __future__ import annotations

import torch
from torch import Tensor

from spectral import linalg
from spectral.errors import ShapeMismatchError
from spectral.methods.base import ALPHA, LayerFactors, Method, Param, as_float, kept_rank, rank_cut_param


def compress_factors(U: Tensor, S: Tensor, V: Tensor, *, k_frac: float, rank: int | None = None) -> Tensor:
    """TSV-C reconstruction from one task's thin SVD: top-k components, k = int(k_frac · r) (TSV Eq. 4 / Eq. 7).
    ``rank`` is r = min(m, n) when the factors are narrower than that (a LoRA task's r triplets)."""
    k = linalg.rank_from_fraction(k_frac, rank if rank is not None else S.shape[-1])
    return linalg.reconstruct(*linalg.truncate(U, S, V, k))


def compress_layer(task_matrix: Tensor, *, k_frac: float) -> Tensor:
    """TSV-C (TSV Eq. 4 / Eq. 7): Δ̂ = Σ_{j≤k} σ_j u_j v_jᵀ with k = int(k_frac · min(m, n)), at least 1."""
    if task_matrix.ndim != 2:
        raise ShapeMismatchError(
            f"compress_layer takes one (m, n) task matrix; got shape {tuple(task_matrix.shape)}"
        )
    return compress_factors(*linalg.thin_svd(as_float(task_matrix)), k_frac=k_frac)


def concatenated_top_k(
    U: Tensor, S: Tensor, V: Tensor, k: int, rank_cut: str = "numerical"
) -> tuple[Tensor, Tensor, Tensor]:
    """``[U_1,k | … | U_T,k]``, the block-diagonal Σ as a vector, and ``[V_1,k | … | V_T,k]`` (TSV Alg. 1, l. 5-7).

    With ``rank_cut="numerical"`` components whose singular value is numerically zero are dropped: their singular
    vectors are an arbitrary completion of the basis, and orthogonalising them together with the real ones would
    rotate the real ones by an arbitrary amount. ``"all"`` keeps them, as the TSV authors' code does. Real
    full fine-tunes are full rank, so for them the two agree; low-rank task matrices (LoRA) are where they differ.
    """
    T, m, _ = U.shape
    n = V.shape[1]
    k = min(k, U.shape[-1])  # factors narrower than min(m, n): a LoRA layer's r triplets (spectral.lora)
    keep = torch.zeros(T, k, dtype=torch.bool, device=S.device)
    for t in range(T):
        keep[t, : min(k, kept_rank(S[t], (m, n), rank_cut))] = True
    keep = keep.reshape(-1)
    U_cat = U[:, :, :k].permute(1, 0, 2).reshape(m, T * k)[:, keep]
    V_cat = V[:, :, :k].permute(1, 0, 2).reshape(n, T * k)[:, keep]
    return U_cat, S[:, :k].reshape(-1)[keep], V_cat


def tsv_m(
    layer: LayerFactors, *, alpha: float = 1.0, k_frac: float | None = None, orthogonalisation: str = "procrustes",
    rank_cut: str = "numerical",
) -> Tensor:
    """TSV-Merge (TSV Alg. 1; Eq. 5 and Eq. 8): alpha · U⊥ Σ V⊥ᵀ.

    Each task keeps its top k = int(k_frac · r) singular components (default k_frac = 1/T); U and V are the
    column concatenations across tasks and are replaced by their polar factors (Procrustes, Eq. 8) or, as an
    option, by whitening X (XᵀX)^{-1/2} (§4.2, App. D.2.1), which Prop. 4.1 shows is the same map.
    If T·k > r the polar factor is that of the rank-r part (see :func:`spectral.linalg.polar_factor`).
    ``rank_cut`` (see :func:`concatenated_top_k`): "all" is the authors' code, "numerical" drops each task's
    numerically-zero components before orthogonalising.
    """
    T = layer.num_tasks
    k = linalg.rank_from_fraction(k_frac if k_frac is not None else 1.0 / T, layer.rank)
    U_cat, S_cat, V_cat = concatenated_top_k(*layer.task_svd(), k, rank_cut)
    if S_cat.numel() == 0:
        return torch.zeros(layer.shape, dtype=U_cat.dtype, device=U_cat.device)
    U_perp = linalg.orthogonalise(U_cat, orthogonalisation)
    V_perp = linalg.orthogonalise(V_cat, orthogonalisation)
    return alpha * linalg.reconstruct(U_perp, S_cat, V_perp)


def low_rank_sum(layer: LayerFactors, *, alpha: float = 1.0, k_frac: float | None = None) -> Tensor:
    """Σ_t of the top-k reconstructions without orthogonalisation (TSV Eq. 5; the 'low-rank only' row of
    TSV Table 4, and AdaRank's Eq. 2 on Task Arithmetic)."""
    T = layer.num_tasks
    k = linalg.rank_from_fraction(k_frac if k_frac is not None else 1.0 / T, layer.rank)
    U, S, V = layer.task_svd()
    return alpha * linalg.reconstruct(*linalg.truncate(U, S, V, k)).sum(0)


K_FRAC = Param(
    "k_frac", 0.125, "float", 0.0, 1.0, 0.005, label="k fraction (per task)",
    help="Fraction of each task's singular components kept, k = int(k_frac · r). Default 1/T (TSV Alg. 1).",
    default_for_tasks=lambda T: 1.0 / T,
    effective=lambda v, r, T: {"k": linalg.rank_from_fraction(v, r)},
)
ORTHO = Param(
    "orthogonalisation", "procrustes", "choice", choices=("procrustes", "whitening"), label="orthogonalisation",
    help="Procrustes polar factor P Qᵀ (Eq. 8) or eigen-whitening X (XᵀX)^{-1/2} (App. D.2.1).",
)

TSV_M = Method(
    name="tsv_m",
    display_name="TSV-M",
    paper="Gargiulo et al. 2025, Task Singular Vectors (Alg. 1)",
    # rank_cut "numerical" by default: identical to the authors' "all" on full fine-tunes; on low-rank (LoRA) task
    # matrices "all" orthogonalises arbitrary completion vectors together with the real ones (docs/methods.md, where spectral can differ from the authors' code)
    params=(ALPHA, K_FRAC, ORTHO, rank_cut_param("numerical")),
    layer_fn=tsv_m,
    non_matrix="alpha_mean",
    description="Top-1/T singular components of every task, decorrelated across tasks by orthogonal Procrustes.",
)

LOW_RANK_SUM = Method(
    name="tsv_low_rank",
    display_name="TSV low-rank only",
    paper="Gargiulo et al. 2025, Table 4 ablation (Eq. 5)",
    params=(ALPHA, K_FRAC),
    layer_fn=low_rank_sum,
    non_matrix="alpha_mean",
    description="Σ_t top-k reconstructions, no interference reduction (TSV Table 4 ablation).",
)


def tsv_c(layer: LayerFactors, *, task: int, k_frac: float = 0.1) -> Tensor:
    """TSV-C of task ``task`` of a layer from (possibly cached) factors (TSV Eq. 7)."""
    U, S, V = layer.task_svd()
    return compress_factors(U[task], S[task], V[task], k_frac=k_frac, rank=layer.rank)


TSV_C = Method(
    name="tsv_c",
    display_name="TSV-C (compression)",
    paper="Gargiulo et al. 2025, Task Singular Vectors (Eq. 4, Eq. 7)",
    params=(Param(**{**K_FRAC.__dict__, "default": 0.1, "default_for_tasks": None}),),
    layer_fn=None,
    non_matrix="mean",
    kind="compress",
    description="Per-task low-rank compression: each task keeps its top-k singular components (task known).",
)
