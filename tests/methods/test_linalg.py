import threading

import pytest
import torch

from spectral import linalg
from spectral.errors import ShapeMismatchError

SHAPES = [(12, 7), (7, 12), (9, 9)]


@pytest.mark.parametrize("shape", SHAPES)
def test_thin_svd_reconstructs_and_is_orthonormal(shape):
    x = torch.randn(4, *shape, dtype=torch.float64)
    U, S, V = linalg.thin_svd(x)
    r = min(shape)
    assert U.shape == (4, shape[0], r) and S.shape == (4, r) and V.shape == (4, shape[1], r)
    torch.testing.assert_close(linalg.reconstruct(U, S, V), x)
    eye = torch.eye(r, dtype=x.dtype).expand(4, r, r)
    torch.testing.assert_close(U.mT @ U, eye)
    torch.testing.assert_close(V.mT @ V, eye)
    assert (S[:, :-1] >= S[:, 1:]).all()


def test_thin_svd_rejects_vectors():
    with pytest.raises(ShapeMismatchError, match=r"\(5,\)"):
        linalg.thin_svd(torch.randn(5))


def test_truncation_is_the_best_rank_k_approximation():
    x = torch.randn(10, 8, dtype=torch.float64)
    U, S, V = linalg.thin_svd(x)
    approx = linalg.reconstruct(*linalg.truncate(U, S, V, 3))
    # Eckart–Young: the Frobenius error is the norm of the discarded singular values
    assert torch.isclose(torch.linalg.norm(x - approx), S[3:].norm())
    assert torch.linalg.matrix_rank(approx) == 3


@pytest.mark.parametrize("frac,r,expected", [(0.125, 768, 96), (0.0, 10, 1), (1.0, 10, 10), (0.33, 7, 2)])
def test_rank_from_fraction(frac, r, expected):
    assert linalg.rank_from_fraction(frac, r) == expected


@pytest.mark.parametrize("shape", [(12, 5), (20, 20)])
def test_polar_factor_is_orthonormal_and_equals_whitening(shape):
    x = torch.randn(*shape)
    p = linalg.polar_factor(x)
    torch.testing.assert_close(p.T @ p, torch.eye(shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(linalg.whiten(x), p, atol=1e-5, rtol=1e-4)  # TSV Prop. 4.1
    # Procrustes: no matrix with orthonormal columns is closer to x (compare with a random one)
    q = torch.linalg.qr(torch.randn(*shape))[0]
    assert torch.linalg.norm(x - p) <= torch.linalg.norm(x - q)


def test_polar_factor_of_orthonormal_columns_is_identity_map():
    q = torch.linalg.qr(torch.randn(15, 6, dtype=torch.float64))[0]
    torch.testing.assert_close(linalg.polar_factor(q), q)


def test_polar_factor_wide_has_orthonormal_rows():
    x = torch.randn(4, 9)  # more columns than rows: T·k > r
    p = linalg.polar_factor(x)
    torch.testing.assert_close(p @ p.T, torch.eye(4), atol=1e-5, rtol=0)


def test_svd_of_factored_matches_dense():
    left = torch.randn(15, 4, dtype=torch.float64)
    right = torch.linalg.qr(torch.randn(9, 4, dtype=torch.float64))[0]
    P, D, Q = linalg.svd_of_factored(left, right)
    dense = left @ right.T
    torch.testing.assert_close(D, torch.linalg.svdvals(dense)[:4])
    torch.testing.assert_close(linalg.reconstruct(P, D, Q), dense)
    torch.testing.assert_close(Q.T @ Q, torch.eye(4, dtype=torch.float64))


def test_numerical_rank():
    x = torch.randn(10, 3, dtype=torch.float64) @ torch.randn(3, 8, dtype=torch.float64)
    assert linalg.numerical_rank(torch.linalg.svdvals(x), (10, 8)) == 3
    assert linalg.numerical_rank(torch.zeros(4), (4, 4)) == 0


def test_resolve_device():
    assert linalg.resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert linalg.resolve_device("auto").type == expected
    with pytest.raises(ValueError):
        linalg.orthogonalise(torch.eye(3), "gram-schmidt")


def _float64_svd_error(A: torch.Tensor, factors: linalg.SVD) -> tuple[float, float, float]:
    """(largest singular-value error / σ₁, ‖A − U S Vᵀ‖_F / ‖A‖_F, largest |UᵀU − I|) against float64."""
    U, S, V = (f.double() for f in factors)
    Ad = A.double()
    S_ref = torch.linalg.svdvals(Ad)
    eye = torch.eye(U.shape[-1], dtype=torch.float64)
    return (float((S - S_ref).abs().max() / S_ref[..., 0].max()),
            float((Ad - linalg.reconstruct(U, S, V)).norm() / Ad.norm()),
            float((U.mT @ U - eye).abs().max()))


def test_gram_svd_matches_the_float64_svd_to_float32_precision_on_full_rank_matrices():
    torch.manual_seed(0)
    A = torch.randn(3, 300, 96) * 1e-3  # full-rank random task matrices, as real fine-tuning deltas are
    U, S, V = linalg.gram_thin_svd(A)
    assert U.shape == (3, 300, 96) and S.shape == (3, 96) and V.shape == (3, 96, 96) and U.dtype == torch.float32
    s_err, r_err, orth = _float64_svd_error(A, (U, S, V))
    eps32 = torch.finfo(torch.float32).eps
    # at least as accurate as LAPACK's float32 SVD of the same matrices
    s32, r32, o32 = _float64_svd_error(A, linalg.thin_svd(A))
    assert s_err <= max(s32, 4 * eps32) and r_err <= max(r32, 4 * eps32) and orth <= max(o32, 4 * eps32)
    assert (S[:, :-1] >= S[:, 1:]).all()
    torch.testing.assert_close(V.mT @ V, torch.eye(96).expand(3, 96, 96), atol=1e-6, rtol=0)


def test_gram_svd_falls_back_to_the_svd_where_the_gram_is_too_ill_conditioned(caplog):
    torch.manual_seed(1)
    Q1, _ = torch.linalg.qr(torch.randn(200, 64, dtype=torch.float64))
    Q2, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
    fine = ((Q1 * torch.logspace(0, -3, 64, dtype=torch.float64)) @ Q2.T).float()
    harsh = ((Q1 * torch.logspace(0, -7, 64, dtype=torch.float64)) @ Q2.T).float()  # κ = 1e7: λ_min/λ_max = 1e-14
    zero = torch.zeros(200, 64)
    A = torch.stack([fine, harsh, zero])
    with caplog.at_level("DEBUG", logger="spectral.linalg"):
        U, S, V = linalg.gram_thin_svd(A)
    assert "2 of 3 200×64 matrices fall back to the SVD" in caplog.text
    for i in (0, 1):
        Ui, Si, Vi = torch.linalg.svd(A[i], full_matrices=False)
        s_err, r_err, orth = _float64_svd_error(A[i], (U[i], S[i], V[i]))
        assert s_err < 1e-6 and r_err < 1e-5 and orth < 1e-5
    torch.testing.assert_close(S[1], torch.linalg.svdvals(harsh))  # the fallback is LAPACK's answer itself
    assert bool(torch.isfinite(U).all()) and float(S[2].abs().max()) == 0.0


def test_gram_svd_rejects_wide_matrices():
    with pytest.raises(ShapeMismatchError, match="10×20"):
        linalg.gram_thin_svd(torch.randn(10, 20))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", [(3072, 768), (768, 3072), (768, 768)])
def test_thin_svd_on_cuda_agrees_with_the_float64_svd(shape):
    torch.manual_seed(2)
    A = torch.randn(2, *shape) * 1e-3
    s_err, r_err, orth = _float64_svd_error(A, tuple(f.cpu() for f in linalg.thin_svd(A.cuda())))
    assert s_err < 1e-6 and r_err < 1e-5 and orth < 1e-5


def test_map_tasks_keeps_order_and_runs_workers_single_threaded(monkeypatch):
    threads_of_this_thread = torch.get_num_threads
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on the 2-core CI machine, whatever this one has
    seen = []

    def work(i):
        seen.append((threading.current_thread().name, threads_of_this_thread()))
        return i * i

    assert linalg.map_tasks(work, range(7)) == [i * i for i in range(7)]
    assert all(name.startswith("spectral-task") for name, _ in seen)
    assert {threads for _, threads in seen} == {1}


def test_map_tasks_runs_in_the_caller_where_there_is_nothing_to_share(monkeypatch):
    caller = threading.current_thread().name

    def where(_):
        return threading.current_thread().name

    assert linalg.map_tasks(where, [0]) == [caller]  # one item
    assert linalg.map_tasks(where, [0, 1], device="meta") == [caller] * 2  # not the CPU
    monkeypatch.setattr(linalg, "TASK_THREADS", 1)
    assert linalg.map_tasks(where, [0, 1]) == [caller] * 2  # switched off


def test_map_tasks_passes_errors_on_and_leaves_the_callers_threads_alone(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)

    def fail_on_three(i):
        if i == 3:
            raise ValueError("task 3 failed")
        return i

    with pytest.raises(ValueError, match="task 3 failed"):
        linalg.map_tasks(fail_on_three, range(5))
    monkeypatch.undo()
    before = torch.get_num_threads()
    linalg.map_tasks(lambda i: torch.linalg.eigh(torch.eye(4) * i), range(4))
    assert torch.get_num_threads() == before
