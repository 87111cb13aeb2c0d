import pytest
import torch

import spectral
from helpers import orthogonal_tasks, ref_cart, ref_iso_c, ref_iso_cts, ref_tsv_m
from spectral.errors import ParameterError, ShapeMismatchError, UnknownMethodError
from spectral.methods.iso import iso_cts_sizes
from spectral.methods.elementwise import consensus, ties

TASK_COUNTS = [1, 2, 3, 8]
SHAPES = [(24, 16), (16, 24)]


def rand_tasks(T, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, *shape, generator=g, dtype=torch.float64)


def test_list_methods_has_every_paper_method():
    names = spectral.list_methods()
    for name in ["weight_average", "task_arithmetic", "ties", "consensus", "tsv_m", "iso_c", "iso_cts", "cart"]:
        assert name in names
    assert "tsv_c" in spectral.list_methods(kind="compress")


def test_every_method_declares_typed_params_with_valid_defaults():
    for name in spectral.list_methods(kind=None):
        m = spectral.get_method(name)
        assert m.display_name and m.paper
        resolved = m.resolve_params({}, num_tasks=8)
        assert set(resolved) == set(m.param_names)
        for p in m.params:
            if p.kind in ("float", "int"):
                assert p.low is not None and p.high is not None and p.low <= resolved[p.name] <= p.high


@pytest.mark.parametrize("T", TASK_COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_task_arithmetic_and_weight_average(T, shape):
    tm = rand_tasks(T, shape)
    torch.testing.assert_close(spectral.merge_layer("task_arithmetic", tm, alpha=0.3), 0.3 * tm.sum(0))
    torch.testing.assert_close(spectral.merge_layer("weight_average", tm, alpha=2.0), tm.mean(0))


@pytest.mark.parametrize("T", TASK_COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_tsv_m_matches_algorithm_1(T, shape):
    tm = rand_tasks(T, shape, seed=T)
    k = max(1, min(shape) // T)
    out = spectral.merge_layer("tsv_m", tm, alpha=0.7)
    torch.testing.assert_close(out, ref_tsv_m(tm, 0.7, k), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("T", [2, 3])
def test_tsv_m_when_tk_exceeds_rank(T):
    tm = rand_tasks(T, (24, 16), seed=5)
    out = spectral.merge_layer("tsv_m", tm, alpha=1.0, k_frac=0.75)  # T·k = 24 or 36 > r = 16
    torch.testing.assert_close(out, ref_tsv_m(tm, 1.0, 12), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("T", [1, 2, 3, 8])
def test_tsv_m_of_orthogonal_tasks_equals_task_arithmetic_of_top_k(T):
    k = 2
    tm = orthogonal_tasks(T, 40, 24, k=3)  # rank 3 each, keep top 2
    out = spectral.merge_layer("tsv_m", tm, alpha=0.5, k_frac=k / 24)
    top_k = torch.stack([spectral.compress_layer(d, k_frac=k / 24) for d in tm]).sum(0)
    torch.testing.assert_close(out, 0.5 * top_k, atol=1e-5, rtol=1e-4)


def test_tsv_m_whitening_equals_procrustes():
    tm = rand_tasks(3, (24, 16))
    a = spectral.merge_layer("tsv_m", tm, orthogonalisation="procrustes")
    b = spectral.merge_layer("tsv_m", tm, orthogonalisation="whitening")
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_tsv_m_single_task_full_rank_is_identity():
    tm = rand_tasks(1, (12, 9))
    torch.testing.assert_close(spectral.merge_layer("tsv_m", tm, alpha=1.0, k_frac=1.0), tm[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("T", TASK_COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_iso_c_matches_algorithm_1_and_is_isotropic(T, shape):
    tm = rand_tasks(T, shape, seed=2)
    out = spectral.merge_layer("iso_c", tm, alpha=1.3)
    torch.testing.assert_close(out, ref_iso_c(tm, 1.3), atol=1e-4, rtol=1e-4)
    s = torch.linalg.svdvals(out)
    sigma_bar = torch.linalg.svdvals(tm.sum(0)).mean()
    torch.testing.assert_close(s, torch.full_like(s, 1.3 * float(sigma_bar)), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("T", TASK_COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("common_frac", [0.8, 0.5, 0.2])
def test_iso_cts_matches_algorithm_2(T, shape, common_frac):
    tm = rand_tasks(T, shape, seed=3)
    out = spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=common_frac)
    torch.testing.assert_close(out, ref_iso_cts(tm, 1.5, common_frac), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("T", TASK_COUNTS)
def test_iso_cts_with_common_frac_one_is_iso_c(T):
    tm = rand_tasks(T, (20, 14), seed=4)
    torch.testing.assert_close(
        spectral.merge_layer("iso_cts", tm, alpha=1.1, common_frac=1.0),
        spectral.merge_layer("iso_c", tm, alpha=1.1), atol=1e-5, rtol=1e-4,
    )


@pytest.mark.parametrize("r,T,frac,expected", [
    (768, 8, 0.8, (616, 19)),   # int(614.4)=614; round(154/8=19.25)=19; k = 768 − 152
    (20, 4, 0.5, (12, 2)),      # round(2.5) = 2: Python rounds half to even
    (12, 4, 0.5, (4, 2)),       # round(1.5) = 2
    (10, 3, 1.0, (10, 0)),
])
def test_iso_cts_sizes_follow_official_rounding(r, T, frac, expected):
    assert iso_cts_sizes(r, T, frac) == expected


@pytest.mark.parametrize("T", TASK_COUNTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cart_matches_definition(T, shape):
    tm = rand_tasks(T, shape, seed=6)
    k = max(1, int(0.25 * min(shape)))
    out = spectral.merge_layer("cart", tm, alpha=0.8, k_frac=0.25)
    torch.testing.assert_close(out, ref_cart(tm, 0.8, k), atol=1e-4, rtol=1e-4)


def test_cart_full_rank_is_weight_average():
    tm = rand_tasks(3, (10, 6))
    torch.testing.assert_close(spectral.merge_layer("cart", tm, alpha=2.0, k_frac=1.0), tm.mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_compress_layer_is_top_k_reconstruction(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    out = spectral.compress_layer(x, k_frac=0.25)
    k = int(0.25 * min(shape))
    assert torch.linalg.matrix_rank(out) == k
    s = torch.linalg.svdvals(x)
    assert torch.isclose(torch.linalg.norm(x - out), s[k:].norm())
    torch.testing.assert_close(spectral.compress_layer(x, k_frac=1.0), x)
    with pytest.raises(ShapeMismatchError):
        spectral.compress_layer(torch.randn(2, 3, 4), k_frac=0.5)


def test_ties_hand_computed():
    # two tasks, four entries, density 50 %
    tv = {"w": torch.tensor([[3.0, -1.0, 2.0, 0.5], [-4.0, 2.0, 1.0, -0.1]])}
    # the authors' global trim keeps |x| ≥ the (4 − 2)-th smallest |x|: three entries per task
    # trimmed: t0 = [3, -1, 2, 0], t1 = [-4, 2, 1, 0]; signs of sums: [-, +, +, 0 → majority sign(-1+1+1) = +]
    out = ties(tv, alpha=1.0, density=0.5)["w"]
    torch.testing.assert_close(out, torch.tensor([-4.0, 2.0, 1.5, 0.0]))
    torch.testing.assert_close(ties(tv, alpha=0.5, density=0.5)["w"], 0.5 * out)
    # mergekit's per-tensor trim keeps int(0.5 · 4) = 2: t0 = [3, 0, 2, 0], t1 = [-4, 2, 0, 0]; zero sum elects +
    per_tensor = ties(tv, alpha=1.0, density=0.5, trim="per_tensor")["w"]
    torch.testing.assert_close(per_tensor, torch.tensor([-4.0, 2.0, 2.0, 0.0]))


def test_ties_density_one_agreeing_signs_is_mean():
    tv = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[-1.0], [-3.0]])}
    out = ties(tv, alpha=1.0, density=1.0)
    torch.testing.assert_close(out["a"], torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(out["b"], torch.tensor([-2.0]))


def test_consensus_hand_computed():
    tv = {"w": torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, -1.0], [1.0, 0.0, 0.0]])}
    # λ = 1: mask_t = |Δ_t| > |Σ − Δ_t|; Σ = [3, 1, 0]
    # entry 0: |1| > |2|? no for all → 0 tasks; entry 1: t1: 1 > 0 yes → 1 task; entry 2: t0: 1 > 1 no, t1: 1 > 1 no
    out = consensus(tv, alpha=1.0, tall_lambda=1.0, min_tasks=1)["w"]
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0, 0.0]))
    # λ = 0.4 → entry 0: 1 > 0.8 for all three (kept by ≥2); entry 1: t1 yes only (dropped at min_tasks=2);
    # entry 2: t0: 1 > 0.4 yes, t1: 1 > 0.4 yes → kept, Σ = 0
    out = consensus(tv, alpha=0.5, tall_lambda=0.4, min_tasks=2)["w"]
    torch.testing.assert_close(out, torch.tensor([1.5, 0.0, 0.0]))


def test_merge_layer_errors():
    tm = rand_tasks(2, (6, 4))
    with pytest.raises(UnknownMethodError, match="tsv_mm"):
        spectral.merge_layer("tsv_mm", tm)
    with pytest.raises(ParameterError, match="k_frac"):
        spectral.merge_layer("tsv_m", tm, k_frac=1.5)
    with pytest.raises(ParameterError, match="unknown parameter"):
        spectral.merge_layer("iso_c", tm, k_frac=0.1)
    with pytest.raises(ParameterError, match="orthogonalisation"):
        spectral.merge_layer("tsv_m", tm, orthogonalisation="qr")
    with pytest.raises(ValueError, match="whole model"):
        spectral.merge_layer("ties", tm)
    with pytest.raises(ShapeMismatchError, match=r"\(6, 4\)"):
        spectral.merge_layer("tsv_m", tm[0])
    with pytest.raises(ShapeMismatchError, match="T = 0"):
        spectral.merge_layer("tsv_m", tm[:0])
