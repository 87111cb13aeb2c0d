"""Engine.lazy_merge: every key computed when read equals Engine.merge's, for every alpha form (linear, affine,
nonlinear, constant) and the whole-model fallback, and nothing is computed before it is read."""
from __future__ import annotations

import pytest
import torch

from spectral.engine import Engine
from spectral.taskset import TaskSet


@pytest.fixture
def engine(vit_state_dicts, tmp_path):
    base, finetuned = vit_state_dicts
    return Engine(TaskSet(base, finetuned), cache_dir=tmp_path, device="cpu")


@pytest.mark.parametrize("method,params", [
    ("task_arithmetic", {"alpha": 0.4}), ("weight_average", {}), ("tsv_m", {"alpha": 0.9, "k_frac": 0.5}),
    ("iso_cts", {"alpha": 1.3, "common_frac": 0.5}), ("iso_c", {"alpha": 1.1}), ("cart", {"alpha": 0.7}),
    ("svc", {"alpha": 1.2}), ("ties", {"alpha": 0.8}),
])
def test_lazy_merge_equals_merge(engine, method, params):
    eager = engine.merge(method, **dict(params))
    lazy = engine.lazy_merge(method, **dict(params))
    assert list(lazy) == list(eager)
    for key in eager:
        torch.testing.assert_close(lazy[key], eager[key], rtol=1e-5, atol=1e-6)
        assert lazy[key].dtype == eager[key].dtype


def test_lazy_merge_computes_only_what_is_read(engine):
    seen = []
    lazy = engine.lazy_merge("tsv_m", progress=lambda i, n, text: seen.append(text))
    assert seen == []  # nothing computed yet
    key = engine.taskset.matrix_keys[0]
    lazy[key]
    assert len(seen) == 1 and key in seen[0]
    with pytest.raises(KeyError):
        lazy["no.such.key"]


def test_a_one_shot_merge_decomposes_a_large_layer_one_task_at_a_time(vit_state_dicts, tmp_path, monkeypatch):
    """task_factors (what a merge without a built cache calls) keeps build_cache's batch_bytes: a layer whose task
    matrices exceed it is decomposed task by task (a 151,936 × 1,536 embedding of 3 tasks held 8.7 GB when they were
    decomposed together), and the stacked factors equal those of one batched SVD."""
    from spectral import linalg

    base, finetuned = vit_state_dicts
    reference = Engine(TaskSet(base, finetuned), cache_dir=tmp_path / "a", device="cpu")
    seen: list[int] = []
    real = linalg.thin_svd

    def recording(matrices):  # noqa: ANN001, ANN202
        seen.append(matrices.shape[0] if matrices.ndim == 3 else 1)
        return real(matrices)

    # a tall layer (a wide one is decomposed through its transpose: a second, inner call)
    key = next(k for k in reference.taskset.matrix_keys if base[k].shape[0] >= base[k].shape[1])
    expected = reference.task_factors(key)
    monkeypatch.setattr(linalg, "thin_svd", recording)
    engine = Engine(TaskSet(base, finetuned), cache_dir=tmp_path / "b", device="cpu", batch_bytes=1,
                    memory_bytes=0)
    got = engine.task_factors(key)
    assert seen == [1] * engine.taskset.num_tasks
    for a, b in zip(got, expected):
        assert a.shape == b.shape and torch.equal(a, b)
    seen.clear()
    assert all(torch.equal(a, b) for a, b in zip(engine.task_factors(key), expected))  # read back from disk
    assert seen == []
