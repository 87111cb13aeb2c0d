"""SVC (Li et al. 2026, Alg. 1) against a direct float64 transcription of its steps."""
import pytest
import torch

import spectral
from helpers import make_vit_state_dicts
from spectral import Engine, TaskSet
from spectral.errors import ParameterError
from spectral.linalg import thin_svd
from spectral.methods.base import LayerFactors
from spectral.methods.svc import svc, svc_layer

SHAPES = [(24, 16), (16, 24)]
BASES = [("task_arithmetic", {}), ("tsv_m", {}), ("iso_cts", {"common_frac": 0.6})]


def rand_tasks(T, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(*shape, generator=g, dtype=torch.float64)  # a shared component: over-accumulation
    return torch.randn(T, *shape, generator=g, dtype=torch.float64) + 0.7 * shared


def ref_svc(tm, merged, svc_alpha):
    """The issue's steps, one direction and one task at a time, in float64.

    M's SVD is the library's thin SVD: an isotropic merge (Iso-C, Iso-CTS) has one repeated singular value, so its
    singular vectors are any basis of that space and SVC's γ depends on which one LAPACK returns; both sides must
    use the same decomposition of M (everything after it is transcribed independently).
    """
    T = tm.shape[0]
    U, S, V = thin_svd(merged.double())
    Vh = V.mT
    gamma = torch.empty_like(S)
    coeffs = torch.empty(T, S.numel(), dtype=torch.float64)
    for r in range(S.numel()):
        a = U[:, r] @ merged.double()
        total = 0.0
        for t in range(T):
            a_t = U[:, r] @ tm[t].double()
            norm2 = float(a_t @ a_t)
            s = svc_alpha if norm2 == 0 else float(a @ a_t) / norm2
            coeffs[t, r] = s
            total += max(svc_alpha, s)
        gamma[r] = T / total
    return U @ torch.diag(gamma * S) @ Vh, coeffs, gamma


@pytest.mark.parametrize("T", [1, 2, 8])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("base,base_params", BASES)
@pytest.mark.parametrize("svc_alpha", [1.0, 0.5])
def test_svc_matches_the_algorithm(T, shape, base, base_params, svc_alpha):
    tm = rand_tasks(T, shape, seed=T)
    alpha = 0.7
    merged = spectral.merge_layer(base, tm, alpha=alpha, **base_params)
    expected, _, _ = ref_svc(tm, merged, svc_alpha)
    got = spectral.merge_layer("svc", tm, alpha=alpha, base=base, svc_alpha=svc_alpha, **base_params)
    assert got.shape == shape
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("base,base_params", BASES)
def test_svc_from_cached_factors_equals_direct_responses(base, base_params):
    """The factored path (uᵀΔ_t = (uᵀA_t) S_t B_tᵀ, what the engine uses) equals the direct one."""
    tm = rand_tasks(3, (20, 12), seed=5)
    direct = svc_layer(LayerFactors(tm), base, 1.0, 0.8, base_params)
    factored_layer = LayerFactors(tm)
    factored_layer.task_svd()  # factors present: the factored path is taken
    factored = svc_layer(factored_layer, base, 1.0, 0.8, base_params)
    torch.testing.assert_close(factored.coefficients, direct.coefficients, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(factored.merged(), direct.merged(), rtol=1e-9, atol=1e-9)
    _, coeffs, gamma = ref_svc(tm, spectral.merge_layer(base, tm, alpha=0.8, **base_params), 1.0)
    torch.testing.assert_close(direct.coefficients, coeffs, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(direct.gamma, gamma, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("T", [1, 2, 8])
@pytest.mark.parametrize("base,base_params", BASES)
def test_large_svc_alpha_scales_the_spectrum_uniformly(T, base, base_params):
    """svc_alpha ≥ every s_r^t ⇒ γ_r = T / (T·svc_alpha): the result is the base merge divided by svc_alpha."""
    tm = rand_tasks(T, (18, 12), seed=1)
    alpha = 0.3
    merged = spectral.merge_layer(base, tm, alpha=alpha, **base_params)
    coeffs = svc_layer(LayerFactors(tm), base, 1.0, alpha, base_params).coefficients
    svc_alpha = float(coeffs.max()) + 1.0
    assert svc_alpha <= 20.0
    got = spectral.merge_layer("svc", tm, alpha=alpha, base=base, svc_alpha=svc_alpha, **base_params)
    torch.testing.assert_close(got, merged / svc_alpha, rtol=1e-9, atol=1e-10)


def test_single_task_arithmetic_with_unit_alpha_is_unchanged():
    """T = 1, M = Δ: every s_r = 1, so γ_r = 1 with svc_alpha = 1 (nothing is over-counted)."""
    tm = rand_tasks(1, (10, 7))
    torch.testing.assert_close(spectral.merge_layer("svc", tm, alpha=1.0), tm[0], rtol=1e-10, atol=1e-10)


def test_identical_tasks_are_counted_once():
    """T copies of Δ: Task Arithmetic gives T·Δ, every s_r^t = T, γ_r = 1/T: SVC recovers Δ."""
    one = rand_tasks(1, (12, 9))[0]
    tm = one.expand(4, -1, -1).clone()
    torch.testing.assert_close(spectral.merge_layer("svc", tm, alpha=1.0), one, rtol=1e-9, atol=1e-9)


def test_base_params_pass_through_and_are_validated():
    tm = rand_tasks(3, (16, 12))
    a = spectral.merge_layer("svc", tm, alpha=1.0, base="tsv_m", k_frac=0.25)
    b = spectral.merge_layer("svc", tm, alpha=1.0, base="tsv_m", k_frac=0.5)
    assert not torch.allclose(a, b)
    with pytest.raises(ParameterError, match="k_frac"):
        spectral.merge_layer("svc", tm, base="tsv_m", k_frac=2.0)
    with pytest.raises(ParameterError, match="common_frac"):
        spectral.merge_layer("svc", tm, base="task_arithmetic", common_frac=0.5)
    with pytest.raises(ParameterError, match="ties"):
        spectral.merge_layer("svc", tm, base="ties")
    with pytest.raises(ParameterError, match="svc_alpha"):
        spectral.merge_layer("svc", tm, svc_alpha=0.0)


# tsv_m stands for the alpha·mean rule of non-matrix parameters: an Iso base would not do here, since its merge is
# isotropic (every singular value equal) and SVC's γ then depends on which singular basis LAPACK returns, which the
# engine's cached path and merge_layer's direct path need not share
@pytest.mark.parametrize("base", ["task_arithmetic", "tsv_m"])
def test_engine_svc_keeps_the_base_merge_off_matrices(tmp_path, base):
    base_sd, ft = make_vit_state_dicts(num_tasks=3, seed=2)
    engine = Engine(TaskSet(base_sd, ft), cache_dir=tmp_path / "cache", device="cpu")
    ts = engine.taskset
    merged = engine.merge("svc", alpha=0.6, base=base)
    reference = engine.merge(base, alpha=0.6)
    for key in ts.keys:
        if key in ts.matrix_keys:
            expected = spectral.merge_layer("svc", ts.task_matrices(key), alpha=0.6, base=base)
            torch.testing.assert_close(merged[key] - ts.base[key], expected.float(), rtol=1e-4, atol=1e-5)
        else:  # non-matrix parameters: exactly the base method's merge
            torch.testing.assert_close(merged[key], reference[key])
    # alpha is part of an SVC merge (not a linear scaling): a new alpha is a new merge
    other = engine.merge("svc", alpha=1.2, base=base)
    key = ts.matrix_keys[0]
    expected = spectral.merge_layer("svc", ts.task_matrices(key), alpha=1.2, base=base)
    torch.testing.assert_close(other[key] - ts.base[key], expected.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("base,base_params", [("ties", {"density": 0.5}), ("magmax", {}), ("dare", {"p": 0.3})])
def test_engine_svc_on_whole_model_bases(tmp_path, base, base_params):
    """TIES, MagMax, DARE merge the whole model: SVC calibrates each matrix of that merge, the rest is the base's."""
    base_sd, ft = make_vit_state_dicts(num_tasks=3, seed=6)
    engine = Engine(TaskSet(base_sd, ft), cache_dir=tmp_path / "cache", device="cpu")
    ts = engine.taskset
    merged = engine.merge("svc", alpha=0.9, base=base, svc_alpha=1.0, **base_params)
    reference = engine.merge(base, alpha=0.9, **base_params)
    for key in ts.keys:
        if key in ts.matrix_keys:
            base_delta = (reference[key] - ts.base[key]).double()
            expected, _, _ = ref_svc(ts.task_matrices(key).double(), base_delta, 1.0)
            torch.testing.assert_close((merged[key] - ts.base[key]).double(), expected, rtol=1e-3, atol=2e-5)
        else:
            torch.testing.assert_close(merged[key], reference[key])
    with pytest.raises(ParameterError, match="Engine"):
        spectral.merge_layer("svc", torch.randn(2, 5, 4), base=base)
