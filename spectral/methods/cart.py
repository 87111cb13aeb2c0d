"""CART: low-rank task vectors centred on the weight average (Choi et al. 2024; AdaRank Eq. 2)."""
from __future__ import annotations

from torch import Tensor

from spectral import linalg
from spectral.methods.base import ALPHA, LayerFactors, Method, Param, as_float


def cart(layer: LayerFactors, *, alpha: float = 1.0, k_frac: float = 0.08) -> Tensor:
    """CART (AdaRank Eq. 2 with θ₀ = weight average): mean_t Δ_t + alpha · Σ_t SVD_k(Δ_t − mean_s Δ_s).

    k = max(1, int(k_frac · r)). The result is relative to the pre-trained weights, like every method here.
    """
    U, S, V = layer.centered_svd()
    k = linalg.rank_from_fraction(k_frac, layer.rank)
    low_rank = linalg.reconstruct(*linalg.truncate(U, S, V, k)).sum(0)
    return as_float(layer.task_matrices).mean(0) + alpha * low_rank


CART = Method(
    name="cart",
    display_name="CART",
    paper="Choi et al. 2024, Revisiting Weight Averaging for Model Merging",
    params=(
        ALPHA,
        # AdaRank's CART runs pick the rank from {8, 12, 16, 32}% of the components; 8% is the smallest.
        Param("k_frac", 0.08, "float", 0.0, 1.0, 0.005, label="k fraction",
              help="Rank of each centred task vector, k = max(1, int(k_frac · r)).",
              effective=lambda v, r, T: {"k": linalg.rank_from_fraction(v, r)}),
    ),
    layer_fn=cart,
    non_matrix="mean",
    alpha_form="affine",
    description="θ_avg + α Σ_t SVD_k(θ_t − θ_avg).",
)
