"""Wilson score intervals (hand-computed cases) and the stratified, seeded subsample."""
from __future__ import annotations

import math

import pytest
import torch

from spectral.errors import ParameterError
from spectral.metrics.estimate import mean_interval_halfwidth, stratified_subsample, wilson_interval


def test_wilson_interval_hand_computed():
    # 8 of 10, z = 1.959964: centre = (0.8 + z²/20) / (1 + z²/10) = 0.716738,
    # half = z·sqrt(0.016 + z²/400) / (1 + z²/10) = 0.226578  →  [0.490162, 0.943318]
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490162, abs=2e-6) and hi == pytest.approx(0.943318, abs=2e-6)
    # 0 of 20: [0, z²/(n + z²)] = [0, 0.161130]
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(3.841459 / (20 + 3.841459), abs=1e-6)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(20 / (20 + 3.841459), abs=1e-6)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ParameterError):
        wilson_interval(11, 10)


def test_interval_narrows_with_more_images():
    widths = [wilson_interval(0.7 * n, n) for n in (10, 100, 1000)]
    assert widths[0][1] - widths[0][0] > widths[1][1] - widths[1][0] > widths[2][1] - widths[2][0]


def test_mean_interval_halfwidth_hand_computed():
    # z · sqrt(0.5·0.5/100 + 0.9·0.1/100) / 2 = 1.959964 · sqrt(0.0034) / 2 = 0.057143
    assert mean_interval_halfwidth([0.5, 0.9], [100, 100]) == pytest.approx(0.0571428, abs=1e-6)


def test_stratified_subsample_keeps_class_shares_and_is_fixed():
    labels = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_subsample(labels, 100, seed=0)
    assert idx.numel() == 100 and torch.equal(idx, torch.sort(torch.unique(idx)).values)
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [60, 30, 10]
    assert torch.equal(idx, stratified_subsample(labels, 100, seed=0))
    assert not torch.equal(idx, stratified_subsample(labels, 100, seed=1))


def test_stratified_subsample_rounding_and_rare_classes():
    labels = torch.tensor([0] * 98 + [1] * 1 + [2] * 1)
    idx = stratified_subsample(labels, 10)
    assert idx.numel() == 10 and set(labels[idx].tolist()) == {0, 1, 2}  # every class at least once
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    assert stratified_subsample(labels, 7).tolist() == list(range(7))  # as large as the split: everything
    assert stratified_subsample(labels, 50).numel() == 7
    with pytest.raises(ParameterError):
        stratified_subsample(labels, 0)
