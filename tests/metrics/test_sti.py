"""STI (TSV Eq. 6): properties, a hand-computed case, blocks, cached factors, errors."""
from __future__ import annotations

import math

import pytest
import torch

from spectral import linalg
from spectral.errors import ShapeMismatchError
from spectral.methods.base import LayerFactors
from spectral.metrics import default_sti_rank, sti, sti_blocks, sti_from_factors

TASK_COUNTS = [1, 2, 3, 8]
SHAPES = [(12, 9), (9, 12)]


def _orthonormal(d: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q


def orthogonal_tasks(T: int, m: int, n: int, k: int, seed: int = 0) -> torch.Tensor:
    """T rank-k tasks whose left and right singular vectors are disjoint column blocks of one orthonormal basis."""
    gen = torch.Generator().manual_seed(seed)
    Qm, Qn = _orthonormal(m, gen), _orthonormal(n, gen)
    tasks = []
    for t in range(T):
        cols = slice(t * k, (t + 1) * k)
        sigma = torch.linspace(3.0, 1.0, k, dtype=torch.float64) * (t + 1)
        tasks.append((Qm[:, cols] * sigma) @ Qn[:, cols].T)
    return torch.stack(tasks)


def reference_sti(task_matrices: torch.Tensor, k: int) -> float:
    """Eq. 6 written out literally: concatenate, form block-diagonal Σ, take the entrywise L1 norm."""
    Us, Ss, Vs = [], [], []
    for delta in task_matrices.to(torch.float64):
        U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
        Us.append(U[:, :k])
        Ss.append(S[:k])
        Vs.append(Vh[:k].T)
    U, V = torch.cat(Us, 1), torch.cat(Vs, 1)
    Sigma = torch.diag(torch.cat(Ss))
    eye = torch.eye(U.shape[1], dtype=torch.float64)
    return float(((U.T @ U - eye) @ Sigma @ (V.T @ V - eye)).abs().sum())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("T", TASK_COUNTS)
def test_sti_zero_for_mutually_orthogonal_tasks(T: int, shape: tuple[int, int]) -> None:
    m, n = shape
    k = default_sti_rank(min(m, n), T)
    tasks = orthogonal_tasks(T, m, n, k, seed=T)
    assert sti(tasks, k=k) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("T", [2, 3, 8])
def test_sti_positive_for_overlapping_tasks(T: int, shape: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(T)
    tasks = torch.randn(T, *shape, generator=gen)
    k = default_sti_rank(min(shape), T)
    assert sti(tasks, k=k) > 1e-3
    assert sti(tasks) > 1e-3  # k=None: full rank


@pytest.mark.parametrize("shape", SHAPES)
def test_sti_single_task_is_zero(shape: tuple[int, int]) -> None:
    tasks = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1))
    for k in (1, 3, None):
        assert sti(tasks, k=k) == pytest.approx(0.0, abs=1e-5)


def test_sti_hand_computed_two_rank_one_tasks() -> None:
    # Δ1 = 2 e1 e1ᵀ, Δ2 = 3 u vᵀ with u = (cos a, sin a), v = (cos b, sin b); k = 1.
    # UᵀU − I = [[0, cos a], [cos a, 0]], VᵀV − I = [[0, cos b], [cos b, 0]], Σ = diag(2, 3)
    # → product diag(3 cos a cos b, 2 cos a cos b) → STI = 5 |cos a cos b|.
    a, b = 0.3, 1.1
    e1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    u = torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)
    v = torch.tensor([math.cos(b), math.sin(b)], dtype=torch.float64)
    tasks = torch.stack([2 * torch.outer(e1, e1), 3 * torch.outer(u, v)])
    expected = 5 * abs(math.cos(a) * math.cos(b))
    assert sti(tasks, k=1) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("T", [2, 3])
def test_sti_matches_literal_formula(T: int, shape: tuple[int, int]) -> None:
    tasks = torch.randn(T, *shape, generator=torch.Generator().manual_seed(7 * T), dtype=torch.float64)
    for k in (1, 2, min(shape)):
        assert sti(tasks, k=k) == pytest.approx(reference_sti(tasks, k), rel=1e-9)
    assert sti(tasks) == pytest.approx(reference_sti(tasks, min(shape)), rel=1e-9)


def test_sti_is_homogeneous_in_scale() -> None:
    tasks = torch.randn(3, 12, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert sti(2.5 * tasks, k=3) == pytest.approx(2.5 * sti(tasks, k=3), rel=1e-9)


def test_default_sti_rank() -> None:
    assert default_sti_rank(9, 1) == 9
    assert default_sti_rank(9, 2) == 4
    assert default_sti_rank(9, 8) == 1
    assert default_sti_rank(7, 8) == 1  # at least 1
    with pytest.raises(ValueError):
        default_sti_rank(0, 2)


def test_sti_from_factors_equals_public_and_layer_factors() -> None:
    tasks = torch.randn(3, 9, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    layer = LayerFactors(tasks)
    assert sti_from_factors(*layer.task_svd(), k=3) == pytest.approx(sti(tasks, k=3), rel=1e-12)
    U, S, V = linalg.thin_svd(tasks)
    assert sti_from_factors(U, S, V) == pytest.approx(sti(tasks), rel=1e-12)
    # Truncated (cached) factors suffice as long as they hold k triplets.
    assert sti_from_factors(U[..., :3], S[..., :3], V[..., :3], 3) == pytest.approx(sti(tasks, k=3), rel=1e-12)


@pytest.mark.parametrize("T", TASK_COUNTS)
def test_sti_blocks_diagonal_identity(T: int) -> None:
    shape = (12, 9)
    k = default_sti_rank(9, T)
    tasks = torch.randn(T, *shape, generator=torch.Generator().manual_seed(T))
    blocks = sti_blocks(tasks, k)
    assert blocks.uu.shape == (T * k, T * k) and blocks.vv.shape == (T * k, T * k)
    assert blocks.boundaries == tuple(t * k for t in range(T + 1))
    assert blocks.num_tasks == T and blocks.k == k
    eye = torch.eye(k, dtype=torch.float64)
    for t in range(T):
        s = slice(blocks.boundaries[t], blocks.boundaries[t + 1])
        torch.testing.assert_close(blocks.uu[s, s], eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(blocks.vv[s, s], eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(blocks.uu, blocks.uu.T)
    # The same from factors and from a LayerFactors.
    layer = LayerFactors(tasks)
    torch.testing.assert_close(sti_blocks(layer, k).uu, blocks.uu)
    torch.testing.assert_close(sti_blocks(layer.task_svd(), k).vv, blocks.vv)
    # STI is the L1 norm of (uu − I) Σ (vv − I).
    U, S, V = layer.task_svd()
    eye_tk = torch.eye(T * k, dtype=torch.float64)
    sigma = torch.diag(S[:, :k].reshape(-1).double())
    value = float(((blocks.uu - eye_tk) @ sigma @ (blocks.vv - eye_tk)).abs().sum())
    assert sti(tasks, k=k) == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_sti_blocks_of_orthogonal_tasks_are_identity() -> None:
    tasks = orthogonal_tasks(3, 9, 12, 3)
    blocks = sti_blocks(tasks, 3)
    torch.testing.assert_close(blocks.uu, torch.eye(9, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(blocks.vv, torch.eye(9, dtype=torch.float64), atol=1e-10, rtol=0)


def test_sti_errors() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(12, 9\)"):
        sti(torch.randn(12, 9))
    with pytest.raises(ShapeMismatchError):
        sti(torch.randn(0, 4, 4))
    with pytest.raises(ShapeMismatchError, match="k = 10"):
        sti(torch.randn(2, 12, 9), k=10)
    with pytest.raises(ValueError):
        sti(torch.randn(2, 12, 9), k=0)
    U, S, V = linalg.thin_svd(torch.randn(2, 6, 5))
    with pytest.raises(ShapeMismatchError, match="factors"):
        sti_from_factors(U, S[:1], V)
    with pytest.raises(TypeError):
        sti_blocks("not a tensor", 1)
