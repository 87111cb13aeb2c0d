"""The masked merge (AdaRank Eq. 5) and its reductions to Task Arithmetic and CART, and the STE."""
from __future__ import annotations

import pytest
import torch

from synthetic import make_engine
from spectral.adapt import AdaptiveMerge, hard_mask, initial_logits, masked_keys, ste_mask
from spectral.adapt.merge import kept_rank


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if a[k].is_floating_point():
            scale = float(b[k].abs().max()) + 1.0
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=2e-6 * scale, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


# -- STE ---------------------------------------------------------------------------------------------------
def test_ste_forward_is_exactly_binary_and_gradient_is_sigmoids():
    logits = torch.tensor([-3.0, -0.1, 0.0, 1e-4, 0.1, 7.0], requires_grad=True)
    B = ste_mask(logits, temperature=10.0)
    assert B.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # exactly 0/1; sigmoid(0) = 0.5 is not > 0.5
    B.sum().backward()
    m = torch.sigmoid(logits.detach() / 10.0)
    torch.testing.assert_close(logits.grad, m * (1 - m) / 10.0)
    assert hard_mask(logits).tolist() == [False, False, False, True, True, True]


def test_initial_logits_keep_the_first_k():
    logits = initial_logits(2, 5, 2, magnitude=0.1)
    assert hard_mask(logits).tolist() == [[True, True, False, False, False]] * 2
    with pytest.raises(ValueError):
        initial_logits(2, 5, 2, magnitude=0.0)


# -- reductions --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("matrix_filter", ["default", "attn_mlp"])
@pytest.mark.parametrize("lam", [0.3, 0.75])
def test_all_ones_mask_with_fixed_lambda_is_task_arithmetic(synthetic_pool, tmp_path, matrix_filter, lam):
    engine = make_engine(synthetic_pool, tmp_path, matrix_filter)
    merge = AdaptiveMerge(engine, base="task_arithmetic", lambda_mode="frozen", lambda_init=lam)
    assert all(bool(m.all()) for m in merge.masks().values())
    assert merge.mask_keys and all("attn" in k or "mlp" in k for k in merge.mask_keys)
    _close(merge.state_dict(), engine.merge("task_arithmetic", alpha=lam))


@pytest.mark.parametrize("matrix_filter", ["default", "attn_mlp"])
@pytest.mark.parametrize("k_frac,lam", [(0.16, 1.0), (0.5, 2.3), (0.01, 0.4)])
def test_top_k_initial_mask_is_static_cart(synthetic_pool, tmp_path, matrix_filter, k_frac, lam):
    engine = make_engine(synthetic_pool, tmp_path, matrix_filter)
    merge = AdaptiveMerge(engine, base="cart", lambda_mode="layer", lambda_init=lam, k_frac=k_frac)
    r = {k: merge.rank[k] for k in merge.mask_keys}
    assert kept_rank(merge.masks()) == {k: [max(1, int(k_frac * r[k]))] * 3 for k in merge.mask_keys}
    _close(merge.state_dict(), engine.merge("cart", alpha=lam, k_frac=k_frac))


def test_adamerging_start_is_task_arithmetic(engine):
    for mode in ("task", "layer"):
        merge = AdaptiveMerge(engine, base="task_arithmetic", masked=False, lambda_mode=mode, lambda_init=0.3)
        assert merge.mask_keys == [] and merge.masks() == {}
        assert tuple(merge.lam.shape) == ((3, 1) if mode == "task" else (3, len(engine.taskset.keys)))
        _close(merge.state_dict(), engine.merge("task_arithmetic", alpha=0.3))


@pytest.mark.parametrize("base", ["task_arithmetic", "cart"])
def test_arbitrary_mask_and_lambda_follow_eq5(engine, base):
    """θ = c + Σ_i λ_i U_i diag(B_i σ_i) V_iᵀ, with a float64 reference SVD of the (centred) task matrices."""
    torch.manual_seed(1)
    merge = AdaptiveMerge(engine, base=base, lambda_mode="layer", lambda_init=0.5)
    with torch.no_grad():
        for v in merge.logits.values():
            v.copy_(torch.randn_like(v))
        merge.lam.copy_(torch.rand_like(merge.lam))
    got = merge.state_dict()
    ts = engine.taskset
    masks = merge.masks()
    for p, key in enumerate(merge.keys):
        stacked = ts.task_matrices(key).double()
        lam = merge.lam[:, p].detach().double()
        if key in masks:
            target = stacked if base == "task_arithmetic" else stacked - stacked.mean(0)
            U, S, Vh = torch.linalg.svd(target, full_matrices=False)
            parts = (U * (masks[key].double() * S)[:, None, :]) @ Vh
            centre = stacked.mean(0) if base == "cart" else 0
            want = ts.base[key].double() + centre + torch.einsum("t,tmn->mn", lam, parts)
            torch.testing.assert_close(got[key].double(), want, rtol=0, atol=1e-5)
    assert any(not bool(m.all()) for m in masks.values())


def test_gradients_reach_logits_and_lambda_through_ste(engine):
    merge = AdaptiveMerge(engine, base="task_arithmetic", lambda_mode="layer")
    params = merge.merged_parameters()
    loss = sum((v ** 2).sum() for v in params.values())
    loss.backward()
    for key in merge.mask_keys:
        grad = merge.logits[key].grad
        assert grad is not None and bool((grad != 0).any()), key
    assert merge.lam.grad is not None and bool((merge.lam.grad != 0).any())


def test_masked_keys_filters(engine):
    assert masked_keys(engine.taskset, "attn_mlp") == [k for k in engine.taskset.matrix_keys
                                                        if k.endswith(("in_proj_weight", "out_proj.weight",
                                                                       "c_fc.weight", "c_proj.weight"))]
    assert masked_keys(engine.taskset, "default") == engine.taskset.matrix_keys
    with pytest.raises(ValueError):
        masked_keys(engine.taskset, "nope")


def test_uses_the_engines_cached_factors(engine, monkeypatch):
    """Every factor comes from engine.layer(key): no SVD of a task matrix is computed by the adapt package."""
    import spectral.linalg as linalg

    engine.build_cache()
    for key in engine.taskset.matrix_keys:
        engine.layer(key).centered_svd()
    calls = []
    real = linalg.thin_svd
    monkeypatch.setattr(linalg, "thin_svd", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(torch.linalg, "svd", lambda *a, **k: (_ for _ in ()).throw(AssertionError("SVD computed")))
    AdaptiveMerge(engine, base="task_arithmetic")
    AdaptiveMerge(engine, base="cart")
    assert calls == []


def test_complement_form_has_the_gradients_of_eq5(engine):
    """Task Arithmetic's exact-start form Σλ_iΔ_i − Σλ_i U_i diag((1−B_i)σ_i)V_iᵀ has Eq. 5's gradients."""
    torch.manual_seed(2)
    merge = AdaptiveMerge(engine, base="task_arithmetic", lambda_mode="layer")
    with torch.no_grad():
        for v in merge.logits.values():
            v.copy_(torch.randn_like(v))
    weights = {k: torch.randn_like(v) for k, v in merge.merged_parameters().items()}
    loss = sum((v * weights[k]).sum() for k, v in merge.merged_parameters().items())
    loss.backward()
    got_logits = {k: v.grad.clone() for k, v in merge.logits.items()}
    got_lam = merge.lam.grad.clone()

    logits = {k: v.detach().clone().requires_grad_(True) for k, v in merge.logits.items()}
    lam = merge.lam.detach().clone().requires_grad_(True)
    ref = 0.0
    for p, key in enumerate(merge.keys):
        if key in logits:
            B = ste_mask(logits[key], merge.temperature)
            coeff = (lam[:, p, None] * B * merge.S[key]).reshape(-1)
            delta = (merge.U[key] * coeff) @ merge.V[key].T  # Eq. 5 as printed
        else:
            delta = torch.tensordot(lam[:, p], merge.dense[key], dims=1)
        ref = ref + ((merge.constant[key] + delta) * weights[key]).sum()
    ref.backward()
    for k in logits:
        torch.testing.assert_close(got_logits[k], logits[k].grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_lam, lam.grad, rtol=1e-4, atol=1e-4)
