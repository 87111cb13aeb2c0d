"""SAR (Iso Eq. 5-6): k_M rules, bounds, hand-computed values, SAR_avg over layers, cached factors, errors."""
from __future__ import annotations

import math

import pytest
import torch

from spectral import linalg
from spectral.errors import ShapeMismatchError
from spectral.methods.base import LayerFactors
from spectral.metrics import (
    SarLayer,
    merged_rank,
    sar,
    sar_from_factors,
    sar_layer_matrix,
    sar_layer_to_merged,
    sar_matrix,
    sar_to_merged,
)

SHAPES = [(12, 7), (7, 12)]
DIAG = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(
    ("eps", "expected"),
    # σ² = 9, 4, 1 (total 14); residual² after k = 14, 5, 1, 0; k_M = min k with residual² ≤ eps²·14.
    [(0.05, 3), (0.2, 3), (0.3, 2), (0.5, 2), (0.6, 1), (0.99, 1), (0.0, 3)],
)
def test_merged_rank_paper_rule_hand_computed(eps: float, expected: int) -> None:
    S = torch.tensor([3.0, 2.0, 1.0])
    assert merged_rank(S, eps) == expected
    assert merged_rank(S.flip(0), eps) == expected  # order does not matter


@pytest.mark.parametrize(
    ("energy", "expected"),
    # cumulative energy 9/14 ≈ 0.643, 13/14 ≈ 0.929, 1; smallest k whose ratio EXCEEDS energy.
    [(0.95, 3), (0.9, 2), (0.5, 1), (9 / 14, 2), (13 / 14, 3)],
)
def test_merged_rank_energy_rule_hand_computed(energy: float, expected: int) -> None:
    S = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    assert merged_rank(S, rule="energy", energy=energy) == expected


def test_merged_rank_degenerate_and_errors() -> None:
    assert merged_rank(torch.zeros(4)) == 0
    assert merged_rank(torch.zeros(4), rule="energy") == 0
    assert merged_rank(torch.tensor([1.0, 0.0, 0.0]), 0.0) == 1
    with pytest.raises(ValueError, match="k rule"):
        merged_rank(torch.ones(3), rule="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        merged_rank(torch.ones(3), 1.5)
    with pytest.raises(ShapeMismatchError):
        merged_rank(torch.ones(3, 3))


def test_sar_hand_computed_self() -> None:
    # k_M = 2 at eps = 0.5 → SAR(Δ, Δ; Δ) = sqrt((9 + 4) / 14).
    assert sar(DIAG, DIAG, DIAG, eps=0.5) == pytest.approx(math.sqrt(13 / 14), rel=1e-12)
    assert sar(DIAG, DIAG, DIAG, eps=0.6) == pytest.approx(math.sqrt(9 / 14), rel=1e-12)
    assert sar(DIAG, DIAG, DIAG) == pytest.approx(1.0)
    assert sar(DIAG, DIAG, DIAG, k_rule="energy", energy=0.9) == pytest.approx(math.sqrt(13 / 14), rel=1e-12)


def test_sar_hand_computed_cross() -> None:
    # target diag(1, 5, 0) → top-1 left singular vector e2; merged diag(3, 2, 1) at eps = 0.6 → k_M = 1;
    # source diag(3, 2, 1): ‖e2 e2ᵀ Δ‖_F / ‖Δ‖_F = 2 / sqrt(14).
    target = torch.diag(torch.tensor([1.0, 5.0, 0.0], dtype=torch.float64))
    assert sar(DIAG, target, DIAG, eps=0.6) == pytest.approx(2 / math.sqrt(14), rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES + [(9, 9)])
@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2, 0.5])
def test_sar_self_lower_bound(shape: tuple[int, int], eps: float) -> None:
    delta = _randn(*shape, seed=int(eps * 100))
    assert sar(delta, delta, delta, eps=eps) >= math.sqrt(1 - eps**2) - 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_sar_in_unit_interval(shape: tuple[int, int]) -> None:
    for seed in range(5):
        src, trg, mrg = (_randn(*shape, seed=10 * seed + i) for i in range(3))
        for eps in (0.05, 0.3, 0.9):
            value = sar(src, trg, mrg, eps=eps)
            assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("shape", SHAPES)
def test_sar_zero_for_orthogonal_source_and_target(shape: tuple[int, int]) -> None:
    m, n = shape
    Q, _ = torch.linalg.qr(_randn(m, m, seed=1))
    source = Q[:, :2] @ _randn(2, n, seed=2)
    target = Q[:, 2:4] @ _randn(2, n, seed=3)
    # merged = target has rank 2, so k_M ≤ 2 and the projector spans Q[:, 2:4] ⟂ source's columns.
    assert sar(source, target, target) == pytest.approx(0.0, abs=1e-12)
    U_t = linalg.thin_svd(target)[0]
    for k in (1, 2):
        assert sar_from_factors(source, U_t, k) == pytest.approx(0.0, abs=1e-12)
    assert sar(target, source, target) == pytest.approx(0.0, abs=1e-12)


def test_sar_from_factors_matches_sar() -> None:
    src, trg, mrg = (_randn(12, 7, seed=i) for i in range(3))
    k = merged_rank(torch.linalg.svdvals(mrg), 0.3)
    U_t = linalg.thin_svd(trg)[0]
    assert sar_from_factors(src, U_t, k) == pytest.approx(sar(src, trg, mrg, eps=0.3), rel=1e-12)
    assert sar_from_factors(src, U_t, 0) == 0.0
    assert math.isnan(sar_from_factors(torch.zeros(12, 7), U_t, k))
    assert sar(src, trg, torch.zeros(12, 7)) == 0.0  # zero merged → k_M = 0


def test_sar_errors() -> None:
    a = torch.randn(12, 7)
    with pytest.raises(ShapeMismatchError, match=r"\(7, 12\)"):
        sar(a, a.T, a)
    with pytest.raises(ShapeMismatchError):
        sar(torch.randn(2, 12, 7), a, a)
    with pytest.raises(ShapeMismatchError, match="k = 8"):
        sar_from_factors(a, linalg.thin_svd(a)[0], 8)
    with pytest.raises(ShapeMismatchError):
        sar_from_factors(a, torch.randn(7, 3), 1)


def _layers(T: int, shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i, (m, n) in enumerate(shapes):
        tasks = _randn(T, m, n, seed=seed + i)
        out.append((tasks, tasks.sum(0)))
    return out


@pytest.mark.parametrize("T", [1, 2, 3, 8])
def test_sar_matrix_and_to_merged_equal_pairwise_average(T: int) -> None:
    layers = _layers(T, [(12, 7), (7, 12)], seed=T)
    eps = 0.2
    mat = sar_matrix(layers, eps=eps)
    to_m = sar_to_merged(layers, eps=eps)
    assert mat.shape == (T, T) and to_m.shape == (T,)
    for i in range(T):
        expected_m = sum(sar(tasks[i], merged, merged, eps=eps) for tasks, merged in layers) / len(layers)
        assert float(to_m[i]) == pytest.approx(expected_m, rel=1e-9)
        for j in range(T):
            expected = sum(sar(tasks[i], tasks[j], merged, eps=eps) for tasks, merged in layers) / len(layers)
            assert float(mat[i, j]) == pytest.approx(expected, rel=1e-9)
    assert bool(((mat >= 0) & (mat <= 1)).all())


def test_sar_matrix_streams_generator_with_progress() -> None:
    layers = _layers(3, [(12, 7), (7, 12), (9, 9)])
    calls: list[tuple[int, int, str]] = []
    expected = sar_matrix(layers)
    got = sar_matrix(
        (SarLayer(tasks, merged, name=f"l{i}") for i, (tasks, merged) in enumerate(layers)),
        progress=lambda i, n, text: calls.append((i, n, text)),
        num_layers=3,
    )
    torch.testing.assert_close(got, expected)
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert "l2" in calls[-1][2]


def test_sar_with_cached_factors_equals_recomputed() -> None:
    tasks = _randn(3, 12, 7, seed=4)
    alpha = 0.7
    merged = alpha * tasks.sum(0)
    layer = LayerFactors(tasks)
    U, _, _ = layer.task_svd()
    U_sum, S_sum, _ = layer.sum_svd()
    cached = SarLayer(tasks, task_left=U, merged_singular_values=S_sum, merged_left=U_sum)
    plain = SarLayer(tasks, merged)
    mat_c, k_c = sar_layer_matrix(cached)
    mat_p, k_p = sar_layer_matrix(plain)
    assert k_c == k_p
    torch.testing.assert_close(mat_c, mat_p)
    torch.testing.assert_close(sar_layer_to_merged(cached)[0], sar_layer_to_merged(plain)[0])
    torch.testing.assert_close(sar_layer_matrix((layer, merged))[0], mat_p)


def test_sar_average_skips_zero_source_layers() -> None:
    tasks_a = _randn(2, 6, 5, seed=1)
    tasks_b = _randn(2, 6, 5, seed=2)
    tasks_b[0] = 0.0  # task 0 is zero in layer b: undefined there, averaged over layer a only
    layers = [(tasks_a, tasks_a.sum(0)), (tasks_b, tasks_b.sum(0))]
    to_m = sar_to_merged(layers)
    assert float(to_m[0]) == pytest.approx(sar(tasks_a[0], tasks_a.sum(0), tasks_a.sum(0)), rel=1e-9)
    assert torch.isfinite(to_m).all()
    only_zero = sar_to_merged([(tasks_b, tasks_b.sum(0))])
    assert math.isnan(float(only_zero[0])) and math.isfinite(float(only_zero[1]))


def test_sar_layer_errors() -> None:
    tasks = torch.randn(2, 6, 5)
    with pytest.raises(ShapeMismatchError, match=r"\(5, 6\)"):
        sar_layer_matrix(SarLayer(tasks, torch.randn(5, 6), name="w"))
    with pytest.raises(ShapeMismatchError, match="T = 3|3 tasks"):
        sar_matrix([(tasks, tasks.sum(0)), (torch.randn(3, 6, 5), torch.randn(6, 5))])
    with pytest.raises(ShapeMismatchError, match="task_left"):
        sar_layer_matrix(SarLayer(tasks, tasks.sum(0), task_left=torch.randn(2, 6, 1)))
    with pytest.raises(ValueError, match="merged"):
        sar_layer_matrix(SarLayer(tasks))
    with pytest.raises(ValueError, match="no layers"):
        sar_matrix([])
    with pytest.raises(TypeError):
        sar_matrix([tasks])
