"""The settings that select the authors' behaviour equal float64 transcriptions of the authors' code (issue 28),
and the rank cut of the Iso methods on a task set whose sum is numerically rank deficient."""
import pytest
import torch

import spectral
from helpers import (
    make_vit_state_dicts,
    ref_iso_c,
    ref_iso_c_numerical,
    ref_iso_cts,
    ref_magmax_authors,
    ref_ties_authors,
    ref_ties_mergekit,
    ref_tsv_m,
    tasks_with_deficient_sum,
)
from spectral import Engine, TaskSet
from spectral.errors import ParameterError
from spectral.methods.base import rank_tolerance
from spectral.methods.elementwise import ties
from spectral.methods.magmax import magmax

M, N, T, RANK = 12, 8, 3, 2
# The sum's N − RANK trailing σ: below the float32 cut (σ₁·max(m, n)·eps32 ≈ 5e-6 here), far enough apart for
# their float64 singular vectors to be defined to ~1e-8, so that the official code's "all" is a well-defined target
TINY = torch.logspace(-6, -7, N - RANK, dtype=torch.float64)
RTOL = rank_tolerance((M, N))


def deficient(dtype=torch.float64, tiny=TINY):
    return tasks_with_deficient_sum(T, M, N, RANK, tiny=tiny, dtype=dtype)


# -- issue item 3: Iso-C / Iso-CTS rank cut on a numerically rank-deficient sum ------------------------------------
def test_iso_c_all_equals_the_official_code_and_numerical_drops_the_noise_directions():
    tm = deficient()
    every = spectral.merge_layer("iso_c", tm, alpha=1.3, rank_cut="all")
    torch.testing.assert_close(every, ref_iso_c(tm, 1.3), atol=1e-7, rtol=1e-7)
    cut = spectral.merge_layer("iso_c", tm, alpha=1.3, rank_cut="numerical")
    torch.testing.assert_close(cut, ref_iso_c_numerical(tm, 1.3, RTOL), atol=1e-7, rtol=1e-7)
    sigma_bar = 1.3 * float(torch.linalg.svdvals(tm.sum(0)).mean())
    s_every, s_cut = torch.linalg.svdvals(every), torch.linalg.svdvals(cut)
    # all: every one of the r directions, the 12 noise ones included, at σ̄; numerical: the RANK real ones only
    torch.testing.assert_close(s_every, torch.full((N,), sigma_bar, dtype=torch.float64))
    torch.testing.assert_close(s_cut[:RANK], torch.full((RANK,), sigma_bar, dtype=torch.float64))
    assert float(s_cut[RANK:].max()) < 1e-7 * sigma_bar


def test_iso_c_rank_cut_in_float32_where_the_sum_is_rounding_noise():
    """The issue's case: float32 checkpoints whose sum is rank deficient, its trailing σ float32 rounding."""
    tm32 = deficient(torch.float32, tiny=None)
    tm64 = tm32.double()
    U, S, V = torch.linalg.svd(tm64.sum(0), full_matrices=False)
    sigma_bar = float(S.mean())
    cut = spectral.merge_layer("iso_c", tm32, alpha=1.0, rank_cut="numerical")
    assert int((torch.linalg.svdvals(cut.double()) > 1e-3 * sigma_bar).sum()) == RANK
    torch.testing.assert_close(cut.double(), sigma_bar * U[:, :RANK] @ Vh_rows(V, RANK), atol=2e-5, rtol=1e-4)
    every = spectral.merge_layer("iso_c", tm32, alpha=1.0, rank_cut="all").double()
    # all r directions scaled to σ̄: the noise ones (arbitrary in float32) are an isometry between the complements
    torch.testing.assert_close(torch.linalg.svdvals(every), torch.full((N,), sigma_bar, dtype=torch.float64),
                               atol=2e-5, rtol=1e-4)
    P_left, P_right = U[:, :RANK] @ U[:, :RANK].T, Vh_rows(V, RANK).T @ Vh_rows(V, RANK)
    torch.testing.assert_close(P_left @ every @ P_right, cut.double(), atol=2e-5, rtol=1e-4)
    noise = every - cut.double()
    assert float((U[:, :RANK].T @ noise).abs().max()) < 1e-4 * sigma_bar
    torch.testing.assert_close(torch.linalg.svdvals(noise)[: N - RANK],
                               torch.full((N - RANK,), sigma_bar, dtype=torch.float64), atol=2e-5, rtol=1e-4)


def Vh_rows(V, k):
    return V[:k, :]


@pytest.mark.parametrize("shape", [(12, 8), (8, 12)])
def test_iso_cts_rank_cut_all_is_the_official_code_numerical_drops_common_noise(shape):
    m, n = shape
    tm = tasks_with_deficient_sum(T, m, n, RANK, tiny=TINY)
    every = spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=0.8, rank_cut="all")
    torch.testing.assert_close(every, ref_iso_cts(tm, 1.5, 0.8), atol=1e-7, rtol=1e-7)
    cut = spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=0.8, rank_cut="numerical")
    torch.testing.assert_close(cut, ref_iso_cts(tm, 1.5, 0.8, common_rtol=rank_tolerance(shape)),
                               atol=1e-7, rtol=1e-7)
    assert float((every - cut).norm()) > 0.1 * float(every.norm())


def test_rank_cut_default_is_the_papers_and_is_validated():
    for name in ("iso_c", "iso_cts"):
        assert spectral.get_method(name).resolve_params({})["rank_cut"] == "all"
        with pytest.raises(ParameterError, match="rank_cut"):
            spectral.get_method(name).resolve_params({"rank_cut": "some"})
    assert spectral.get_method("tsv_m").resolve_params({}, 8)["rank_cut"] == "numerical"


def test_engine_cached_path_honours_rank_cut(tmp_path):
    base, ft = make_vit_state_dicts(num_tasks=T, seed=3)
    key = "visual.transformer.resblocks.0.attn.out_proj.weight"
    deltas = tasks_with_deficient_sum(T, 8, 8, 2, tiny=None, seed=4, dtype=torch.float32)
    for t, name in enumerate(sorted(ft)):
        ft[name][key] = base[key] + deltas[t]
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "c", device="cpu")
    stacked = engine.taskset.task_matrices(key)
    for method, extra in (("iso_c", {}), ("iso_cts", {"common_frac": 0.5})):
        got = {cut: engine.merge(method, alpha=1.0, rank_cut=cut, **extra)[key] - base[key]
               for cut in ("all", "numerical")}
        for cut, delta in got.items():
            want = spectral.merge_layer(method, stacked, alpha=1.0, rank_cut=cut, **extra)
            torch.testing.assert_close(delta, want, atol=1e-5, rtol=1e-4)
        assert float((got["all"] - got["numerical"]).norm()) > 0.1 * float(got["all"].norm())


# -- TSV-M: the authors keep every one of the k components --------------------------------------------------------
def test_tsv_m_rank_cut_all_equals_the_authors_code_on_low_rank_tasks():
    g = torch.Generator().manual_seed(7)
    tasks = []
    for _ in range(2):  # rank 2 + distinct tiny components (LoRA-like): the authors keep k = 8 of them
        Q1 = torch.linalg.qr(torch.randn(24, 16, generator=g, dtype=torch.float64))[0]
        Q2 = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))[0]
        S = torch.cat([torch.tensor([2.0, 1.5], dtype=torch.float64), torch.logspace(-8, -9, 14, dtype=torch.float64)])
        tasks.append((Q1 * S) @ Q2.T)
    tm = torch.stack(tasks)
    every = spectral.merge_layer("tsv_m", tm, alpha=1.0, rank_cut="all")
    torch.testing.assert_close(every, ref_tsv_m(tm, 1.0, 8), atol=1e-8, rtol=1e-8)
    cut = spectral.merge_layer("tsv_m", tm, alpha=1.0, rank_cut="numerical")
    torch.testing.assert_close(cut, ref_tsv_m(tm, 1.0, 2), atol=1e-8, rtol=1e-8)
    assert float((every - cut).norm()) > 1e-3


# -- TIES: global (the authors' code) and per tensor (mergekit) ----------------------------------------------------
def _task_vectors(seed=0, T=3, levels=None):
    g = torch.Generator().manual_seed(seed)
    shapes = {"a.weight": (6, 5), "a.bias": (6,), "b.weight": (4, 7), "c": (9,)}
    out = {}
    for k, sh in shapes.items():
        x = torch.randn(T, *sh, generator=g, dtype=torch.float64)
        out[k] = x if levels is None else torch.round(x * levels) / levels
    return out


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.5, 0.93])
def test_ties_global_equals_the_authors_code(density):
    tv = _task_vectors(seed=1)
    got = ties(tv, alpha=0.7, density=density, trim="global")
    want = ref_ties_authors(tv, 0.7, density)
    for k in tv:
        torch.testing.assert_close(got[k], want[k], atol=1e-12, rtol=1e-12)


def test_ties_global_keeps_int_d_density_plus_one_entries_per_task():
    tv = _task_vectors(seed=2, T=1)
    d = sum(v[0].numel() for v in tv.values())
    got = ties(tv, alpha=1.0, density=0.2, trim="global")  # one task: the merge is the trimmed task vector
    assert sum(int((v != 0).sum()) for v in got.values()) == int(0.2 * d) + 1


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 1.0])
def test_ties_per_tensor_equals_mergekit(density):
    tv = _task_vectors(seed=3)
    got = ties(tv, alpha=0.7, density=density, trim="per_tensor")
    want = ref_ties_mergekit(tv, 0.7, density)
    for k in tv:
        torch.testing.assert_close(got[k], want[k], atol=1e-12, rtol=1e-12)
        # per tensor and per task: exactly max(1, int(density · numel)) entries survive the trim (mergekit 0.1.5)
    one = ties({k: v[:1] for k, v in tv.items()}, alpha=1.0, density=density, trim="per_tensor")
    for k, v in one.items():
        assert int((v != 0).sum()) == min(v.numel(), max(1, int(density * v.numel())))


def test_ties_trims_differ_and_engine_passes_trim(tmp_path):
    base, ft = make_vit_state_dicts(num_tasks=3, seed=5)
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "c", device="cpu")
    tv = {k: engine.taskset.task_matrices(k) for k in engine.taskset.keys}
    for trim, ref in (("global", ref_ties_authors), ("per_tensor", ref_ties_mergekit)):
        merged = engine.merge("ties", alpha=0.9, density=0.2, trim=trim)
        want = ref(tv, 0.9, 0.2)
        for k in tv:
            torch.testing.assert_close(merged[k].double(), base[k].double() + want[k], atol=1e-6, rtol=1e-5)
    g, p = ties(tv, alpha=1.0, trim="global"), ties(tv, alpha=1.0, trim="per_tensor")
    assert any(not torch.equal(g[k], p[k]) for k in tv)
    with pytest.raises(ParameterError, match="trim"):
        spectral.get_method("ties").resolve_params({"trim": "layer"})


# -- MagMax: equal magnitudes go to the later task in the authors' code --------------------------------------------
def test_magmax_last_equals_the_authors_fold_with_many_ties():
    tv = _task_vectors(seed=4, T=4, levels=1)  # integers: many |a| = |b|, often of opposite sign
    got = magmax(tv, alpha=0.5)
    want = ref_magmax_authors(tv, 0.5)
    for k in tv:
        torch.testing.assert_close(got[k], want[k])
    first = magmax(tv, alpha=0.5, tie_break="first")
    assert any(not torch.equal(first[k], got[k]) for k in tv)


def test_iso_cts_all_keeps_s_per_task_where_the_residuals_vanish():
    """Rank-1 tasks (LoRA-like): the residuals outside the common subspace are zero, so the official code's s
    directions per task are an arbitrary completion; 'all' still spans every one of the r directions at σ̄,
    'numerical' keeps only the sum's real ones."""
    g = torch.Generator().manual_seed(9)
    tm = torch.stack([torch.randn(12, 1, generator=g) @ torch.randn(1, 8, generator=g) for _ in range(3)])
    sigma_bar = float(torch.linalg.svdvals(tm.double().sum(0)).mean())
    every = spectral.merge_layer("iso_cts", tm, alpha=1.0, common_frac=0.5, rank_cut="all").double()
    torch.testing.assert_close(torch.linalg.svdvals(every), torch.full((8,), sigma_bar, dtype=torch.float64),
                               atol=1e-5, rtol=1e-4)
    cut = spectral.merge_layer("iso_cts", tm, alpha=1.0, common_frac=0.5, rank_cut="numerical").double()
    assert int((torch.linalg.svdvals(cut) > 1e-4 * sigma_bar).sum()) == 3


@pytest.mark.parametrize("trim", ["per_tensor", "global"])
def test_ties_without_normalize_sums_the_agreeing_entries(trim):
    # mergekit's normalize: false (its dare_ties default): Σ_t of the trimmed entries that agree with the elected
    # sign, where normalize: true divides that sum by how many agree
    tv = _task_vectors(seed=4)
    mean = ties(tv, alpha=0.5, density=0.4, trim=trim)
    total = ties(tv, alpha=0.5, density=0.4, trim=trim, normalize=False)
    for k, stacked in tv.items():
        if trim == "per_tensor":
            from spectral.methods.elementwise import trim_per_tensor

            trimmed = trim_per_tensor(stacked, 0.4).double()
            sign = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).double()
            count = (torch.sign(trimmed) == sign).sum(0).clamp(min=1)
            torch.testing.assert_close(total[k].double(), mean[k].double() * count, atol=1e-12, rtol=1e-12)
        else:  # the disjoint mean times the number of agreeing tasks, where any agree
            assert torch.all((total[k] == 0) == (mean[k] == 0))
            ratio = total[k][mean[k] != 0] / mean[k][mean[k] != 0]
            assert torch.allclose(ratio, ratio.round(), atol=1e-9) and bool((ratio.round() >= 1).all())
