"""Slider moves on full-rank layers through the engine's cached factors and the exact Gram routes (issue 10,
item 4): the merged deltas equal the float64 algorithms and the plain-SVD implementation to float32 precision."""
import pytest
import torch

from helpers import make_vit_state_dicts, ref_iso_cts, ref_tsv_m
from spectral import linalg
from spectral.engine import Engine
from spectral.taskset import TaskSet


@pytest.fixture
def full_rank_engine(tmp_path):
    # width 48: in_proj 144×48, c_fc 192×48, c_proj 48×192 (ViT-B/32's shapes scaled down 16×); every Δ_t is
    # Gaussian noise, so full rank
    base, ft = make_vit_state_dicts(num_tasks=8, seed=3, width=48, blocks=1, tokens=10, out_dim=32)
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")
    engine.build_cache()
    return engine


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref.double()).abs().max() / ref.double().abs().max())


@pytest.mark.parametrize("method,params,ref", [
    ("tsv_m", {"k_frac": 0.0625}, lambda tm, r: ref_tsv_m(tm, 1.0, linalg.rank_from_fraction(0.0625, r))),
    ("iso_cts", {"common_frac": 0.2}, lambda tm, r: ref_iso_cts(tm, 1.0, 0.2)),
])
def test_slider_move_on_full_rank_layers_is_exact(full_rank_engine, method, params, ref, monkeypatch):
    engine, ts = full_rank_engine, full_rank_engine.taskset
    engine.merge(method, alpha=1.0)  # the default first, as the dashboard does, then move the slider
    delta, _ = engine.merged_delta(method, alpha=1.0, **params)
    monkeypatch.setattr(linalg, "USE_GRAM", False)
    plain = Engine(ts, cache=engine.cache, device="cpu").merged_delta(method, alpha=1.0, **params)[0]
    for key in ts.matrix_keys:
        tm = ts.task_matrices(key)
        assert torch.linalg.matrix_rank(tm[0].double()) == min(tm.shape[1:]), key
        expected = ref(tm, min(tm.shape[1:]))
        assert rel_err(delta.slope[key], expected) <= 3 * rel_err(plain.slope[key], expected) + 1e-6, key
        assert rel_err(delta.slope[key], plain.slope[key]) <= 1e-4, key


def test_iso_cts_tasks_shared_out_over_threads_equal_the_serial_loop(full_rank_engine, monkeypatch):
    engine, ts = full_rank_engine, full_rank_engine.taskset
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the split runs whatever this machine's core count
    threaded, _ = engine.merged_delta("iso_cts", alpha=1.0, common_frac=0.3)
    monkeypatch.setattr(linalg, "TASK_THREADS", 1)
    serial, _ = Engine(ts, cache=engine.cache, device="cpu").merged_delta("iso_cts", alpha=1.0, common_frac=0.3)
    for key in ts.matrix_keys:
        assert rel_err(threaded.slope[key], serial.slope[key]) <= 1e-5, key
