"""KnOTS (Stoica et al. 2025, §3) against an independent float64 transcription of the official code's steps
(dense concatenation, one SVD, S·V_t blocks, TIES mask and disjoint mean, U @ merged), and hand-checked cases."""
import pytest
import torch

import spectral
from spectral import Engine, TaskSet
from spectral.errors import ParameterError
from spectral.methods.base import FLOAT32_EPS


def rand_tasks(T, shape, seed=0, rank=None):
    g = torch.Generator().manual_seed(seed)
    if rank is None:
        return torch.randn(T, *shape, generator=g, dtype=torch.float64)
    m, n = shape
    return torch.randn(T, m, rank, generator=g, dtype=torch.float64) @ torch.randn(T, rank, n, generator=g,
                                                                                     dtype=torch.float64)


def ref_knots(tm, *, alpha, merge, density, concat="columns", dare_masks=None, p=0.0):
    """The official steps, written out on the dense float64 concatenation."""
    x = tm.double()
    if concat == "rows":
        x = x.mT
    T, m, n = x.shape
    cat = torch.cat(list(x), dim=1)  # [Δ_1 | … | Δ_T], m × T·n
    U, s, Vh = torch.linalg.svd(cat, full_matrices=False)
    keep = s > s.max() * max(m, T * n) * FLOAT32_EPS
    U, s, Vh = U[:, keep], s[keep], Vh[keep]
    sV = [torch.diag(s) @ block for block in torch.split(Vh, n, dim=1)]  # diag(s) @ V_t (apply_svd)
    flat = torch.stack([v.reshape(-1) for v in sV])  # (T, r'·n)
    if merge == "dare":
        flat = flat * dare_masks.reshape(T, -1) / (1 - p)
    d = flat.shape[1]
    if density >= 1:
        prune = torch.ones_like(flat, dtype=torch.bool)
    else:  # topk_values_mask: keep |x| ≥ the (d − int(d·K))-th smallest |x|, per task
        kth = flat.abs().kthvalue(d - int(d * density), dim=1, keepdim=True).values
        prune = flat.abs() >= kth
    pruned = flat * prune
    if merge == "task_arithmetic":
        merged = pruned.sum(0)
    else:
        sign = torch.sign(pruned.sum(0))
        sign[sign == 0] = torch.sign(sign.sum())  # resolve_zero_signs("majority")
        mask = torch.where(sign > 0, pruned > 0, pruned < 0) & prune
        masked = flat * mask
        total, count = masked.sum(0), (masked != 0).sum(0)
        merged = total / count.clamp(min=1)
        merged[count == 0] = 0
    out = alpha * U @ merged.reshape(-1, n)
    return out.mT if concat == "rows" else out


@pytest.mark.parametrize("T", [1, 2, 3, 8])
@pytest.mark.parametrize("shape", [(12, 9), (9, 12)])
@pytest.mark.parametrize("merge,density", [("ties", 0.2), ("ties", 1.0), ("task_arithmetic", 1.0),
                                           ("task_arithmetic", 0.5)])
@pytest.mark.parametrize("concat", ["columns", "rows"])
def test_knots_matches_the_transcription(T, shape, merge, density, concat):
    tm = rand_tasks(T, shape, seed=T)
    got = spectral.merge_layer("knots", tm, alpha=0.7, merge=merge, density=density, concat=concat)
    expected = ref_knots(tm, alpha=0.7, merge=merge, density=density, concat=concat)
    assert got.shape == shape
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("T", [2, 3])
def test_knots_on_low_rank_updates_drops_the_numerically_zero_directions(T):
    tm = rand_tasks(T, (16, 10), seed=5, rank=2)  # LoRA-like: the concatenation has rank ≤ 2T
    got = spectral.merge_layer("knots", tm, alpha=1.0, merge="ties", density=0.3)
    torch.testing.assert_close(got, ref_knots(tm, alpha=1.0, merge="ties", density=0.3), rtol=1e-8, atol=1e-8)


def test_knots_dare_matches_the_transcription_with_the_same_masks():
    from spectral.methods.dare import key_generator

    tm = rand_tasks(3, (10, 7), seed=2)
    p, seed = 0.3, 11
    got = spectral.merge_layer("knots", tm, alpha=1.0, merge="dare", p=p, seed=seed, density=1.0)
    # merge_layer has no parameter name: the mask generator is seeded with (seed, "")
    reps_shape = (3, 10, 7)  # r' = min(10, 21) = 10 directions
    keep = torch.rand(reps_shape, generator=key_generator(seed, ""), dtype=torch.float32) >= p
    expected = ref_knots(tm, alpha=1.0, merge="dare", density=1.0, dare_masks=keep.double(), p=p)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8)


def test_hand_checked_disjoint_supports():
    # [Δ1 | Δ2] = [[2,0,0,0],[0,0,0,3]]: U = [e2, e1], S V_1ᵀ = [[0,0],[2,0]], S V_2ᵀ = [[0,3],[0,0]]; the
    # representations never overlap, so TIES' disjoint mean is their sum and U·sum = Δ1 + Δ2
    tm = torch.tensor([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]]], dtype=torch.float64)
    got = spectral.merge_layer("knots", tm, alpha=1.0, merge="ties", density=1.0)
    torch.testing.assert_close(got, torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64)))


def test_hand_checked_sign_election():
    # [Δ1 | Δ2] = [[1,0,-3,0],[0,0,0,0]] has rank 1: U = ±e1, representations ±[1,0] and ±[-3,0]. The elected sign
    # is that of -2 (×±): only task 2's entry survives, so KnOTS-TIES gives [[-3,0],[0,0]]; KnOTS-TA gives Δ1 + Δ2
    tm = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[-3.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    ties = spectral.merge_layer("knots", tm, alpha=1.0, merge="ties", density=1.0)
    torch.testing.assert_close(ties, torch.tensor([[-3.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    ta = spectral.merge_layer("knots", tm, alpha=0.5, merge="task_arithmetic", density=1.0)
    torch.testing.assert_close(ta, 0.5 * tm.sum(0))


@pytest.mark.parametrize("T", [1, 3])
def test_identities(T):
    tm = rand_tasks(T, (11, 7), seed=3)
    # U spans every Δ_t's columns, so U Uᵀ Σ_t Δ_t = Σ_t Δ_t: KnOTS-TA without trimming is Task Arithmetic
    ta = spectral.merge_layer("knots", tm, alpha=0.4, merge="task_arithmetic", density=1.0)
    torch.testing.assert_close(ta, 0.4 * tm.sum(0), rtol=1e-10, atol=1e-10)
    if T == 1:  # one task: TIES without trimming returns it
        torch.testing.assert_close(spectral.merge_layer("knots", tm, alpha=1.0, merge="ties", density=1.0), tm[0])


def test_bad_parameters_are_named():
    tm = rand_tasks(2, (4, 3))
    with pytest.raises(ParameterError, match="merge"):
        spectral.merge_layer("knots", tm, merge="magmax")
    with pytest.raises(ParameterError, match="density"):
        spectral.merge_layer("knots", tm, density=1.5)


@pytest.mark.parametrize("merge", ["ties", "task_arithmetic", "dare"])
def test_engine_merge_lazy_merge_and_merge_layer_agree(vit_state_dicts, tmp_path, merge):
    base, ft = vit_state_dicts
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")
    ts = engine.taskset
    params = {"merge": merge, "density": 0.5, "p": 0.2, "seed": 3}
    merged = engine.merge("knots", alpha=0.7, **params)
    lazy = engine.lazy_merge("knots", alpha=0.7, **params)
    for key in ts.matrix_keys:
        torch.testing.assert_close(lazy[key], merged[key], rtol=1e-6, atol=1e-6)
        if merge != "dare":  # DARE's masks are seeded by the parameter name, which merge_layer does not know
            expected = ts.base[key] + spectral.merge_layer("knots", ts.task_matrices(key), alpha=0.7, **params)
            torch.testing.assert_close(merged[key], expected, atol=1e-5, rtol=1e-5)
    stacked = ts.task_matrices("visual.ln_post.bias")
    rule = 0.7 * stacked.sum(0) if merge == "task_arithmetic" else 0.7 * stacked.mean(0)
    torch.testing.assert_close(merged["visual.ln_post.bias"], ts.base["visual.ln_post.bias"] + rule)
    # an alpha-only change reuses the merge (KnOTS is linear in alpha)
    again = engine.merge("knots", alpha=0.35, **params)
    key = ts.matrix_keys[0]
    torch.testing.assert_close(again[key] - ts.base[key], 0.5 * (merged[key] - ts.base[key]), atol=1e-6, rtol=1e-5)


def test_knots_is_listed():
    assert "knots" in spectral.list_methods()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("merge", ["ties", "dare", "task_arithmetic"])
def test_knots_on_cuda_matches_cpu(vit_state_dicts, tmp_path, merge):
    base, ft = vit_state_dicts
    params = {"merge": merge, "density": 0.5, "p": 0.2, "seed": 3}
    cpu = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cpu", device="cpu").merge("knots", alpha=0.7, **params)
    gpu = Engine(TaskSet(base, ft), cache_dir=tmp_path / "gpu", device="cuda").merge("knots", alpha=0.7, **params)
    for key in cpu:
        assert gpu[key].device.type == "cpu"
        torch.testing.assert_close(gpu[key], cpu[key], atol=1e-5, rtol=1e-4)
