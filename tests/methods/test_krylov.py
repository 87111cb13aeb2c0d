"""The truncated eigensolver behind slider moves at small s (issue 10, item 4): certified block Krylov for the top-s
eigenpairs of a Gram, its fallbacks, and Iso-CTS's k-independent residual Grams on tall layers.

Sizes are the smallest at which the Krylov route is taken (Gram ≥ KRYLOV_MIN_SIZE = 256, s ≤ 5 % of it).
"""
import logging

import pytest
import torch

import spectral
from helpers import ref_iso_cts
from spectral import linalg
from spectral.engine import Engine
from spectral.methods import iso
from spectral.taskset import TaskSet

F64 = torch.float64


def spd_with_spectrum(eigvals: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric matrix Q diag(λ) Qᵀ with a random orthogonal Q (returned too)."""
    n = eigvals.numel()
    Q = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64))[0]
    return (Q * eigvals.to(F64)) @ Q.T, Q


def with_spectrum(m: int, n: int, sigmas: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    P = torch.linalg.qr(torch.randn(m, sigmas.numel(), generator=g, dtype=F64))[0]
    Q = torch.linalg.qr(torch.randn(n, sigmas.numel(), generator=g, dtype=F64))[0]
    return ((P * sigmas.to(F64)) @ Q.T).float()


RTOL = linalg.default_rtol(320, torch.float32)


def strict(lam: torch.Tensor) -> torch.Tensor:
    """The convergence test top_gram_eigenpairs asks of Krylov: ‖Gq − λq‖ ≤ 0.1 · rtol · √(λ_i λ_1)."""
    return 0.1 * RTOL * (lam * lam[:1]).sqrt()


def align_signs(X: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return X * torch.sign((X * ref).sum(0, keepdim=True))


@pytest.mark.parametrize("s", [1, 4, 8])
def test_krylov_top_eigenpairs_equal_the_dense_eigh(s):
    eigvals = torch.logspace(0, -6, 320)  # a real spectrum's decay: no gap anywhere beyond ~4 %
    G, _ = spd_with_spectrum(eigvals, seed=s)
    found = linalg.top_eigenpairs(G, s, tolerance=strict)
    assert found is not None
    lam, V = found
    ev, Q = torch.linalg.eigh(G)
    torch.testing.assert_close(lam, ev.flip(0)[:s], rtol=1e-9, atol=0)
    ref = Q.flip(1)[:, :s]
    torch.testing.assert_close(align_signs(V, ref), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(V.T @ V, torch.eye(s, dtype=F64), rtol=0, atol=1e-12)


def test_krylov_returns_none_when_it_has_not_converged():
    G, _ = spd_with_spectrum(torch.logspace(0, -6, 320))
    # two blocks of 16 columns cannot resolve 8 eigenpairs of a 4 %-gap spectrum to float32 precision
    assert linalg.top_eigenpairs(G, 8, tolerance=strict, max_dim=32) is None
    # a flat spectrum: λ_8 and λ_9 tie, so the top 8 are not determined and the certificate cannot pass
    flat = torch.ones(320, dtype=F64)
    flat[:4] = torch.tensor([4.0, 3.0, 2.0, 1.5])
    G_flat, _ = spd_with_spectrum(flat)
    assert linalg.top_eigenpairs(G_flat, 8, tolerance=strict) is None


def test_certificate_catches_an_eigenvalue_the_start_block_misses():
    """A start block orthogonal to the top eigenvector keeps the whole Krylov space orthogonal to it: the Ritz
    pairs converge, to λ_2 … λ_{s+1}. Their residuals pass; only the certificate sees that λ_1 is missing."""
    eigvals = torch.logspace(0, -6, 320)
    G, Q = spd_with_spectrum(eigvals, seed=3)
    s = 6
    start = torch.randn(320, s + 8, generator=torch.Generator().manual_seed(1), dtype=F64)
    start = start - Q[:, :1] @ (Q[:, :1].T @ start)
    assert linalg.top_eigenpairs(G, s, tolerance=strict, start=start) is None
    calls = []
    original = linalg._top_certified
    try:
        linalg._top_certified = lambda *a: calls.append(original(*a)) or True  # type: ignore[assignment]
        lam, _ = linalg.top_eigenpairs(G, s, tolerance=strict, start=start)
    finally:
        linalg._top_certified = original
    assert calls == [False]
    torch.testing.assert_close(lam, eigvals.to(F64)[1 : s + 1], rtol=1e-8, atol=0)  # λ_1 really was missed


@pytest.mark.parametrize("shape", [(512, 320), (320, 512)])
def test_top_singular_triplets_through_krylov_equal_the_full_svd(shape, monkeypatch):
    m, p = shape
    C = with_spectrum(m, p, torch.logspace(0, -3, min(m, p)), seed=5)
    s = 12
    used = []
    original = linalg.top_eigenpairs
    monkeypatch.setattr(linalg, "top_eigenpairs", lambda *a, **k: used.append(1) or original(*a, **k))
    (U, S, V), fast = linalg.top_singular_triplets(C, s)
    assert fast and used == [1]
    U_ref, S_ref, Vh_ref = torch.linalg.svd(C.double(), full_matrices=False)
    U_ref, S_ref, V_ref = U_ref[:, :s].float(), S_ref[:s].float(), Vh_ref[:s].T.float()
    torch.testing.assert_close(S, S_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(align_signs(U, U_ref), U_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(align_signs(V, V_ref), V_ref, rtol=0, atol=1e-5)


def test_top_gram_eigenpairs_falls_back_to_eigh_when_krylov_fails(caplog, monkeypatch):
    C = with_spectrum(512, 320, torch.logspace(0, -3, 320), seed=6)
    gram = C.double().T @ C.double()
    monkeypatch.setattr(linalg, "top_eigenpairs", lambda *a, **k: None)
    with caplog.at_level(logging.INFO, logger="spectral.linalg"):
        lam, Q = linalg.top_gram_eigenpairs(gram, 10, rtol=linalg.default_rtol(320, torch.float32))
    assert "did not converge; using eigh" in caplog.text
    torch.testing.assert_close(lam, torch.linalg.eigvalsh(gram).flip(0)[:10], rtol=1e-10, atol=0)


@pytest.mark.parametrize("common_frac", [0.8, 0.5, 0.2])
def test_iso_cts_on_tall_full_rank_layers_through_residual_grams(common_frac, monkeypatch):
    """Tall layers (m > n) take the k-independent ResidualGrams route, with Krylov at 0.8 (s = 8 of 320):
    equal to the verbatim float64 algorithm as closely as the plain float32-SVD implementation is."""
    tm = torch.randn(8, 640, 320, generator=torch.Generator().manual_seed(7)) * 0.01
    ref = ref_iso_cts(tm, 1.5, common_frac)
    fast = spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=common_frac)
    monkeypatch.setattr(linalg, "USE_GRAM", False)
    plain = spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=common_frac)

    def rel(x, y):
        return float((x.double() - y.double()).abs().max() / y.double().abs().max())

    assert rel(fast, ref) <= 3 * rel(plain, ref) + 1e-6
    assert rel(fast, plain) <= 1e-4


def test_engine_keeps_residual_grams_across_slider_moves_within_its_budget(monkeypatch):
    g = torch.Generator().manual_seed(8)
    base = {"w": torch.zeros(96, 32), "b": torch.zeros(32)}
    ft = {f"t{t}": {"w": torch.randn(96, 32, generator=g) * 0.01, "b": torch.zeros(32)} for t in range(4)}
    ts = TaskSet(base, ft)
    built = []
    original = iso.residual_grams
    monkeypatch.setattr(iso, "residual_grams", lambda layer: built.append(1) or original(layer))

    engine = Engine(ts, cache_dir=None, device="cpu")
    engine.cache.persist = False
    first = engine.merged_delta("iso_cts", common_frac=0.8)[0].slope["w"]
    second = engine.merged_delta("iso_cts", common_frac=0.5)[0].slope["w"]
    assert built == [1]  # the second common_frac reused the first's Grams
    torch.testing.assert_close(second, spectral.merge_layer("iso_cts", ts.task_matrices("w"), alpha=1.0,
                                                             common_frac=0.5), rtol=0, atol=1e-6)
    assert not torch.equal(first, second)

    built.clear()
    tight = Engine(ts, cache=engine.cache, device="cpu", derived_bytes=1024)  # too small to keep them
    tight.merged_delta("iso_cts", common_frac=0.8)
    again = tight.merged_delta("iso_cts", common_frac=0.5)[0].slope["w"]
    assert built == [1, 1] and tight._derived_used == 0
    torch.testing.assert_close(again, second, rtol=0, atol=0)


def test_iso_cts_on_a_tall_layer_with_a_zero_and_a_low_rank_task(monkeypatch):
    """Numerical rank 0 and 3 (ρ_t < n): the residual Grams have those sizes, and the merge equals the plain-SVD
    implementation, which also leaves numerically zero components out."""
    g = torch.Generator().manual_seed(9)
    tm = torch.randn(3, 120, 40, generator=g) * 0.01
    tm[1] = 0.0
    tm[2] = (torch.randn(120, 3, generator=g) @ torch.randn(3, 40, generator=g)) * 0.01
    out = spectral.merge_layer("iso_cts", tm, alpha=1.0, common_frac=0.9)
    assert torch.isfinite(out).all()
    grams = iso.residual_grams(spectral.LayerFactors(tm))
    assert grams.rho == [40, 0, 3] and grams.E[1].shape == (0, 0) and grams.Y[2].shape == (40, 3)
    monkeypatch.setattr(linalg, "USE_GRAM", False)
    plain = spectral.merge_layer("iso_cts", tm, alpha=1.0, common_frac=0.9)
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-4 * float(plain.abs().max()))
