"""Normalised accuracy, NAI (Iso Eq. 4), Pearson's r on hand-computed numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spectral.errors import MissingKeyError, ParameterError
from spectral.metrics import nai, nai_value, normalised_accuracy, normalised_accuracy_value, pearson_r

MERGED = {"mnist": 0.90, "cars": 0.60, "dtd": 0.50}
FINETUNED = {"mnist": 1.00, "cars": 0.80, "dtd": 0.75}
ZEROSHOT = {"mnist": 0.50, "cars": 0.60, "dtd": 0.45}


def test_normalised_accuracy_hand_computed() -> None:
    out = normalised_accuracy(MERGED, FINETUNED)
    assert out.per_task == pytest.approx({"mnist": 0.9, "cars": 0.75, "dtd": 2 / 3})
    assert out.mean == pytest.approx((0.9 + 0.75 + 2 / 3) / 3)
    assert out.undefined == ()
    assert normalised_accuracy_value(45, 50) == pytest.approx(0.9)  # percent works the same
    assert out.as_dict()["mean"] == out.mean


def test_nai_hand_computed() -> None:
    out = nai(MERGED, FINETUNED, ZEROSHOT)
    # mnist (0.9 − 0.5)/(1 − 0.5) = 0.8; cars (0.6 − 0.6)/(0.8 − 0.6) = 0; dtd (0.5 − 0.45)/(0.75 − 0.45) = 1/6
    assert out.per_task == pytest.approx({"mnist": 0.8, "cars": 0.0, "dtd": 1 / 6})
    assert out.mean == pytest.approx((0.8 + 0 + 1 / 6) / 3)
    assert nai_value(0.4, 0.8, 0.5) == pytest.approx(-1 / 3)  # worse than zero-shot → negative
    assert nai_value(0.8, 0.8, 0.5) == pytest.approx(1.0)


def test_degenerate_tasks_are_nan_or_errors() -> None:
    zs = dict(ZEROSHOT, cars=0.80)  # acc_ft == acc_zs for cars
    out = nai(MERGED, FINETUNED, zs)
    assert math.isnan(out.per_task["cars"]) and out.undefined == ("cars",)
    assert out.mean == pytest.approx((0.8 + 1 / 6) / 2)
    with pytest.raises(ParameterError, match="cars"):
        nai(MERGED, FINETUNED, zs, strict=True)
    assert math.isnan(nai_value(0.5, 0.7, 0.7))
    ft = dict(FINETUNED, dtd=0.0)
    out = normalised_accuracy(MERGED, ft)
    assert out.undefined == ("dtd",) and math.isnan(out.per_task["dtd"])
    with pytest.raises(ParameterError, match="dtd"):
        normalised_accuracy(MERGED, ft, strict=True)
    all_bad = nai({"a": 0.5}, {"a": 0.7}, {"a": 0.7})
    assert math.isnan(all_bad.mean)


def test_missing_tasks_raise() -> None:
    with pytest.raises(MissingKeyError, match="dtd"):
        normalised_accuracy(MERGED, {"mnist": 1.0, "cars": 0.8})
    with pytest.raises(MissingKeyError, match="zeroshot"):
        nai(MERGED, FINETUNED, {"mnist": 0.5})
    with pytest.raises(ParameterError):
        normalised_accuracy({}, FINETUNED)


def test_pearson_r() -> None:
    x = [1.0, 2.0, 3.0, 4.0]
    assert pearson_r(x, [2.0, 4.0, 6.0, 8.0]) == pytest.approx(1.0)
    assert pearson_r(x, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # hand-computed: x = (1, 2, 3), y = (1, 3, 2): cov = 1, var_x = var_y = 2 → r = 0.5
    assert pearson_r([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert pearson_r(a, b) == pytest.approx(float(np.corrcoef(a, b)[0, 1]))
    assert pearson_r({"p": 1.0, "q": 2.0, "r": 3.0}, {"r": 2.0, "q": 3.0, "p": 1.0}) == pytest.approx(0.5)
    assert pearson_r([1.0, 2.0, float("nan"), 3.0], [1.0, 3.0, 5.0, 2.0]) == pytest.approx(0.5)
    assert math.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ParameterError):
        pearson_r([1.0, 2.0], [1.0])
    with pytest.raises(ParameterError):
        pearson_r([1.0], [1.0])
    with pytest.raises(ParameterError):
        pearson_r({"a": 1.0}, [1.0])
