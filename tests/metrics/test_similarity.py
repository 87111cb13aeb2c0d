"""Cosine similarity of flattened task vectors, streamed over layers; per-layer norms."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spectral.errors import ShapeMismatchError
from spectral.metrics import CosineAccumulator, cosine_similarity_matrix, layer_norms

SHAPES = {"a.weight": (12, 7), "a.bias": (7,), "b.weight": (7, 12), "c": (3, 2, 2)}


def _task_vectors(T: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.randn(T, *shape, generator=gen) for key, shape in SHAPES.items()}


def _flat(tv: dict[str, torch.Tensor]) -> torch.Tensor:
    T = next(iter(tv.values())).shape[0]
    return torch.cat([x.reshape(T, -1) for x in tv.values()], 1).double()


@pytest.mark.parametrize("T", [1, 2, 3, 8])
def test_cosine_matches_torch_and_properties(T: int) -> None:
    tv = _task_vectors(T, seed=T)
    cos = cosine_similarity_matrix(tv)
    flat = _flat(tv)
    expected = F.cosine_similarity(flat.unsqueeze(1), flat.unsqueeze(0), dim=-1)
    assert cos.shape == (T, T) and cos.dtype == torch.float64
    torch.testing.assert_close(cos, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(cos.diagonal(), torch.ones(T, dtype=torch.float64))
    torch.testing.assert_close(cos, cos.T, atol=0, rtol=0)
    assert bool((cos.abs() <= 1).all())


def test_streaming_equals_one_shot() -> None:
    tv = _task_vectors(3, seed=11)
    one_shot = cosine_similarity_matrix({"all": _flat(tv)})
    acc = CosineAccumulator()
    for key, stacked in tv.items():
        acc.update(stacked, key)
    torch.testing.assert_close(acc.similarity(), one_shot, atol=1e-12, rtol=0)
    assert acc.num_keys == 4 and acc.num_parameters == _flat(tv).shape[1] and acc.num_tasks == 3
    torch.testing.assert_close(acc.norms(), _flat(tv).norm(dim=1))
    # Generators of tensors and of (key, tensor) pairs work too.
    torch.testing.assert_close(cosine_similarity_matrix(x for x in tv.values()), one_shot, atol=1e-12, rtol=0)
    torch.testing.assert_close(cosine_similarity_matrix(iter(tv.items())), one_shot, atol=1e-12, rtol=0)


def test_cosine_known_values_and_zero_task() -> None:
    stacked = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    cos = cosine_similarity_matrix([stacked])
    assert float(cos[0, 1]) == pytest.approx(0.0)
    assert float(cos[0, 2]) == pytest.approx(1 / math.sqrt(2))
    assert bool(torch.isnan(cos[3]).all()) and bool(torch.isnan(cos[:, 3]).all())


def test_layer_norms() -> None:
    tv = _task_vectors(3, seed=2)
    norms = layer_norms(tv)
    assert list(norms) == list(tv)
    for key, stacked in tv.items():
        torch.testing.assert_close(norms[key], stacked.reshape(3, -1).double().norm(dim=1))


def test_similarity_errors() -> None:
    acc = CosineAccumulator()
    with pytest.raises(ValueError, match="no parameters"):
        acc.similarity()
    acc.update(torch.randn(3, 4), "x")
    with pytest.raises(ShapeMismatchError, match="y.*T = 2"):
        acc.update(torch.randn(2, 4), "y")
    with pytest.raises(ShapeMismatchError):
        layer_norms({"z": torch.zeros(0, 3)})
