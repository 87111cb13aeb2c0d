"""Values of a rank parameter that change the merge (issue 29): Iso-CTS's common_frac and TSV-M's / CART's k_frac
snap to the grid values at which an integer size changes, for the ranks of a pool."""
from __future__ import annotations

import pytest
import torch

import spectral
from spectral.errors import ParameterError
from spectral.methods import get_method
from spectral.methods.effective import describe_sizes, distinct_values, effective_sizes, grid
from spectral.methods.iso import iso_cts_sizes


def param(method: str, name: str):
    return next(p for p in get_method(method).params if p.name == name)


def test_iso_cts_sizes_of_the_issue_are_one_class() -> None:
    p = param("iso_cts", "common_frac")
    assert effective_sizes(p, 0.52, [128], 8) == effective_sizes(p, 0.49, [128], 8) == {128: {"k": 64, "s": 8}}
    values = distinct_values(p, [128], 8, keep=[0.8])
    assert sum(0.49 <= v <= 0.52 for v in values) <= 1  # 0.49 … 0.52 is one merge: one step at most
    assert 0.8 in values  # the paper's default is kept as its class's representative


@pytest.mark.parametrize("ranks,T", [([128], 8), ([64, 50, 512], 8), ([12], 3), ([40, 7], 2), ([9], 1)])
def test_distinct_iso_cts_values_match_a_brute_force_scan(ranks: list[int], T: int) -> None:
    p = param("iso_cts", "common_frac")
    values = distinct_values(p, ranks, T)
    on_grid = grid(p)
    # independent reference: walk the grid, record where the tuple of iso_cts_sizes over all ranks changes
    ref, last = [], None
    for v in on_grid:
        sig = tuple(iso_cts_sizes(r, T, v) for r in ranks)
        if sig != last:
            ref.append(v)
            last = sig
    assert values == ref
    sizes = [tuple(iso_cts_sizes(r, T, v) for r in ranks) for v in values]
    assert len(set(sizes)) == len(sizes)  # every kept value is a different merge
    assert set(sizes) == {tuple(iso_cts_sizes(r, T, v) for r in ranks) for v in on_grid}  # and none is lost


@pytest.mark.parametrize("method", ["tsv_m", "cart"])
def test_k_frac_steps_change_k(method: str) -> None:
    p = param(method, "k_frac")
    values = distinct_values(p, [16], 4, keep=[0.25])
    ks = [max(1, min(16, int(v * 16))) for v in values]
    assert ks == sorted(set(ks)) == list(range(1, 17))  # k = 1 … 16, each once
    assert 0.25 in values and effective_sizes(p, 0.25, [16], 4) == {16: {"k": 4}}
    # a kept value off its class's first grid value represents the class instead of the first one
    assert 0.27 in distinct_values(p, [16], 4, keep=[0.27]) and 0.25 not in distinct_values(p, [16], 4, keep=[0.27])


def test_the_merge_is_the_same_within_a_class_and_differs_between_classes() -> None:
    torch.manual_seed(0)
    deltas = torch.randn(3, 12, 10, dtype=torch.float64).float()
    p = param("iso_cts", "common_frac")
    values = distinct_values(p, [10], 3)
    same_a = spectral.merge_layer("iso_cts", deltas, common_frac=0.50)
    same_b = spectral.merge_layer("iso_cts", deltas, common_frac=0.52)
    assert effective_sizes(p, 0.50, [10], 3) == effective_sizes(p, 0.52, [10], 3)
    assert torch.equal(same_a, same_b)
    merges = [spectral.merge_layer("iso_cts", deltas, common_frac=v) for v in values]
    for a, b in zip(merges, merges[1:]):
        assert not torch.allclose(a, b)


def test_errors_and_description() -> None:
    with pytest.raises(ParameterError, match="alpha"):
        effective_sizes(param("tsv_m", "alpha"), 1.0, [8], 2)
    with pytest.raises(ParameterError, match="no matrix ranks"):
        distinct_values(param("tsv_m", "k_frac"), [], 2)
    text = describe_sizes({768: {"k": 96}, 50: {"k": 6}}, {768: 48, 50: 1})
    assert text == "k = 96 (r = 768, 48 layers) · k = 6 (r = 50, 1 layer)"
