"""Spectra: effective rank (AdaRank Fig. 3), energy curves, normalised spectra."""
from __future__ import annotations

import pytest
import torch

from spectral.errors import ShapeMismatchError
from spectral.metrics import (
    effective_rank,
    effective_rank_from_singular_values,
    effective_ranks,
    energy_curve,
    normalised_spectrum,
    singular_values,
)

DIAG = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("energy", "expected"),
    # σ² = 9, 4, 1: top-k energy 9/14 ≈ 0.643, 13/14 ≈ 0.929, 1; smallest k with fraction ≥ energy.
    [(0.5, 1), (9 / 14, 1), (0.65, 2), (0.9, 2), (13 / 14, 2), (0.95, 3), (0.99, 3), (1.0, 3)],
)
def test_effective_rank_diag_321(energy: float, expected: int) -> None:
    assert effective_rank(DIAG, energy=energy) == expected
    if energy not in (9 / 14, 13 / 14):  # exact ties hold in float64 only
        assert effective_rank(DIAG.float(), energy=energy) == expected


def test_effective_rank_default_energy_and_non_square() -> None:
    assert effective_rank(DIAG) == 3
    wide = torch.zeros(3, 8, dtype=torch.float64)
    wide[:3, :3] = DIAG
    assert effective_rank(wide, energy=0.9) == 2
    assert effective_rank(wide.T, energy=0.9) == 2
    rank_one = torch.outer(torch.arange(1.0, 13.0), torch.arange(1.0, 8.0))
    assert effective_rank(rank_one) == 1
    assert effective_rank(torch.zeros(12, 7)) == 0


def test_effective_ranks_batched_matches_single() -> None:
    gen = torch.Generator().manual_seed(0)
    mats = torch.randn(4, 12, 7, generator=gen) * torch.logspace(0, -3, 7)
    S = singular_values(mats)
    assert S.shape == (4, 7)
    batched = effective_ranks(S, 0.9)
    assert batched.dtype == torch.long and batched.shape == (4,)
    assert batched.tolist() == [effective_rank(m, energy=0.9) for m in mats]
    assert effective_rank_from_singular_values(S[0], 0.9) == int(batched[0])


def test_energy_curve_values() -> None:
    curve = energy_curve(torch.tensor([3.0, 2.0, 1.0]))
    torch.testing.assert_close(curve, torch.tensor([9 / 14, 13 / 14, 1.0], dtype=torch.float64))
    rand = energy_curve(singular_values(torch.randn(12, 7, generator=torch.Generator().manual_seed(1))))
    assert bool((rand[1:] >= rand[:-1]).all()) and float(rand[-1]) == 1.0
    assert bool((energy_curve(torch.zeros(3)) == 0).all())


def test_normalised_spectrum() -> None:
    out = normalised_spectrum(torch.tensor([4.0, 2.0, 0.0]))
    torch.testing.assert_close(out, torch.tensor([1.0, 0.5, 0.0]))
    assert float(normalised_spectrum(torch.tensor([4.0, 2.0, 0.0]), floor=1e-12)[-1]) == pytest.approx(1e-12)
    assert bool((normalised_spectrum(torch.zeros(2, 3)) == 0).all())


def test_spectra_errors() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(5,\)"):
        effective_rank(torch.ones(5))
    with pytest.raises(ShapeMismatchError):
        effective_rank(torch.ones(2, 3, 3))
    with pytest.raises(ShapeMismatchError):
        effective_rank_from_singular_values(torch.ones(2, 3))
    with pytest.raises(ShapeMismatchError):
        singular_values(torch.ones(3))
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="energy"):
            effective_rank(DIAG, energy=bad)
