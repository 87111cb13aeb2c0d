import pytest
import torch

import spectral
from spectral import linalg
from spectral.engine import Engine
from spectral.errors import ParameterError, UnknownMethodError
from spectral.methods.elementwise import consensus, ties
from spectral.taskset import TaskSet

LAYER_METHODS = ["weight_average", "task_arithmetic", "tsv_m", "iso_c", "iso_cts", "cart", "tsv_low_rank"]


@pytest.fixture
def engine(vit_state_dicts, tmp_path):
    base, ft = vit_state_dicts
    return Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")


def test_build_cache_computes_each_task_matrix_once(engine):
    ts = engine.taskset
    assert engine.cache_status() == {"cached": 0, "total": ts.num_tasks * len(ts.matrix_keys)}
    calls = []
    assert engine.build_cache(progress=lambda i, n, text: calls.append((i, n))) == 30
    assert calls and calls[-1][0] == calls[-1][1]
    assert engine.cache_status()["cached"] == 30
    assert engine.build_cache() == 0  # nothing left to do


def test_build_cache_bounds_the_factors_waiting_for_a_slow_disk(vit_state_dicts, tmp_path, monkeypatch):
    import threading
    import time

    base, ft = vit_state_dicts
    # one matrix per batch: the staging buffer is refilled for every matrix, across shapes
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu", batch_bytes=1)
    lock, written, waiting = threading.Lock(), [0], []
    real_put = engine.cache.put

    def slow_put(*args, **kwargs):
        time.sleep(0.02)
        real_put(*args, **kwargs)
        with lock:
            written[0] += 1

    def progress(done, todo, text):  # called after each batch's writes are queued
        if text.startswith("SVD ") and not text.startswith("SVD of"):
            with lock:
                waiting.append(done - written[0])

    monkeypatch.setattr(engine.cache, "put", slow_put)
    assert engine.build_cache(progress=progress) == 30
    assert written[0] == 30 and len(waiting) == 30 and max(waiting) <= 4  # 3 batches queued + the one just added
    stats = engine.last_build_stats  # the slow writers show in the phase accounting
    assert stats["write_thread_s"] >= 30 * 0.02 and stats["wait_for_writers"] > 0
    main_thread = sum(stats[k] for k in ("hash", "fill", "svd", "to_host", "wait_for_writers"))
    assert 0 < main_thread <= stats["total"]
    ts = engine.taskset
    for key in ts.matrix_keys:
        for t in range(ts.num_tasks):
            U, S, V = engine.cache.get(ts.matrix_hash(t, key))
            torch.testing.assert_close(linalg.reconstruct(U, S, V), ts.task_matrix(t, key), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", LAYER_METHODS)
def test_merge_equals_merge_layer_on_every_key(engine, method):
    ts = engine.taskset
    merged = engine.merge(method, alpha=0.7)
    m = spectral.get_method(method)
    for key in ts.matrix_keys:
        expected = ts.base[key] + spectral.merge_layer(method, ts.task_matrices(key), alpha=0.7)
        torch.testing.assert_close(merged[key], expected, atol=1e-5, rtol=1e-5)
    stacked = ts.task_matrices("visual.ln_post.bias")
    rule = {"sum": 0.7 * stacked.sum(0), "alpha_mean": 0.7 * stacked.mean(0), "mean": stacked.mean(0)}
    torch.testing.assert_close(merged["visual.ln_post.bias"], ts.base["visual.ln_post.bias"] + rule[m.non_matrix])
    assert torch.equal(merged["visual.step_counter"], ts.base["visual.step_counter"])
    assert set(merged) == set(ts.base)


def test_whole_model_methods(engine):
    ts = engine.taskset
    tv = {k: ts.task_matrices(k) for k in ts.keys}
    for name, fn, params in [("ties", ties, {"density": 0.2}), ("consensus", consensus, {"tall_lambda": 0.4})]:
        merged = engine.merge(name, alpha=0.9, **params)
        direct = fn(tv, alpha=0.9, **params)
        for key in ts.keys:
            torch.testing.assert_close(merged[key], ts.base[key] + direct[key])


def test_no_task_svd_is_recomputed_when_parameters_change(engine, monkeypatch):
    engine.build_cache()
    engine.merge("iso_cts", common_frac=0.8)  # fills the derived (sum) factors too
    engine.merge("cart", k_frac=0.1)
    decomposed_shapes = []
    real = linalg.thin_svd

    def spy(x):
        decomposed_shapes.append(tuple(x.shape))
        return real(x)

    monkeypatch.setattr(linalg, "thin_svd", spy)
    misses = engine.cache.misses
    for k_frac in [0.05, 0.3, 0.6]:
        engine.merge("tsv_m", k_frac=k_frac)
        engine.merge("cart", k_frac=k_frac)
    for common_frac in [0.3, 0.9]:
        engine.merge("iso_cts", common_frac=common_frac)
    assert engine.cache.misses == misses
    # the only SVDs left are Iso-CTS' residual factors (m × rank), never a full task matrix stack
    full_stacks = [s for s in decomposed_shapes if len(s) == 3]
    assert full_stacks == []


def test_a_fresh_engine_reads_factors_from_disk(engine, vit_state_dicts, tmp_path):
    engine.build_cache()
    first = engine.merge("tsv_m", k_frac=0.25)
    base, ft = vit_state_dicts
    again = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")
    assert again.cache_status()["cached"] == 30
    second = again.merge("tsv_m", k_frac=0.25)
    assert again.cache.misses == 0
    for key in first:
        torch.testing.assert_close(first[key], second[key])


def test_changed_checkpoint_never_hits_a_stale_entry(engine, vit_state_dicts, tmp_path):
    engine.build_cache()
    base, ft = vit_state_dicts
    ft = {k: dict(v) for k, v in ft.items()}
    key = "visual.transformer.resblocks.0.attn.out_proj.weight"
    ft["task1"][key] = ft["task1"][key] + 0.01
    changed = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")
    assert changed.cache_status()["cached"] == 29
    merged = changed.merge("tsv_m", k_frac=0.5)
    expected = base[key] + spectral.merge_layer("tsv_m", changed.taskset.task_matrices(key), k_frac=0.5)
    torch.testing.assert_close(merged[key], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["tsv_m", "cart", "weight_average", "ties"])
def test_alpha_only_change_reuses_the_merge_and_writes_in_place(engine, method, monkeypatch):
    first = engine.merge(method, alpha=0.5)
    buffers = {k: v for k, v in first.items()}
    calls = []
    monkeypatch.setattr(engine, "_compute_delta", lambda *a, **k: calls.append(1))
    second = engine.merge(method, alpha=1.2, out=first)
    assert calls == []  # served from the remembered merge
    assert all(second[k] is buffers[k] for k in engine.taskset.keys)
    monkeypatch.undo()
    fresh_engine = Engine(engine.taskset, cache=engine.cache, device="cpu")
    fresh = fresh_engine.merge(method, alpha=1.2)
    for key in fresh:
        torch.testing.assert_close(second[key], fresh[key], atol=1e-5, rtol=1e-5)


def test_method_defaults_come_from_the_papers(engine):
    _, alpha, params = engine.resolve("tsv_m", {})
    assert alpha == 1.0 and params["k_frac"] == pytest.approx(1 / 3)  # 1/T with T = 3
    _, alpha, params = engine.resolve("iso_cts", {})
    assert params["common_frac"] == 0.8
    _, alpha, _ = engine.resolve("task_arithmetic", {})
    assert alpha == 0.3
    with pytest.raises(ParameterError):
        engine.merge("iso_cts", common_frac=2.0)
    with pytest.raises(UnknownMethodError):
        engine.merge("nope")
    with pytest.raises(ValueError, match="compress"):
        engine.merge("tsv_c")


def test_compress_is_tsv_c_per_layer(engine):
    ts = engine.taskset
    out = engine.compress("task1", k_frac=0.25)
    for key in ts.matrix_keys:
        expected = ts.base[key] + spectral.compress_layer(ts.task_matrix(1, key), k_frac=0.25)
        torch.testing.assert_close(out[key], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["visual.ln_pre.weight"], ts.finetuned["task1"]["visual.ln_pre.weight"])
    full = engine.compress(1, k_frac=1.0)
    for key in ts.keys:
        torch.testing.assert_close(full[key], ts.finetuned["task1"][key], atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(engine):
    gpu = Engine(engine.taskset, cache_dir=engine.cache.root / "gpu", device="cuda")
    a, b = engine.merge("iso_cts"), gpu.merge("iso_cts")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cache_build_subtracts_on_the_device_exactly(vit_state_dicts, tmp_path):
    base, ft = vit_state_dicts
    ts = TaskSet(base, ft)
    key = ts.matrix_keys[0]
    out = torch.empty(ts.base[key].shape, device="cuda")
    ts.task_matrix_into(1, key, out, base=ts.base[key].cuda())
    assert torch.equal(out.cpu(), ts.task_matrix(1, key))
    gpu = Engine(ts, cache_dir=tmp_path / "gpu", device="cuda", batch_bytes=1 << 16)
    assert gpu.build_cache() == len(ts.matrix_keys) * ts.num_tasks
    # factors come back through pinned blocks; the memory tier keeps its own pageable copies
    assert gpu.cache._memory and not any(f.is_pinned() for factors in gpu.cache._memory.values() for f in factors)
    for key in ts.matrix_keys:
        for t in range(ts.num_tasks):
            U, S, V = gpu.cache.get(ts.matrix_hash(t, key))
            torch.testing.assert_close(linalg.reconstruct(U, S, V), ts.task_matrix(t, key), atol=1e-5, rtol=1e-5)


def test_release_memory_frees_factors_derived_data_and_merges_and_keeps_the_disk_cache(engine, monkeypatch):
    engine.build_cache()
    first = engine.merge("iso_cts", common_frac=0.5, alpha=1.0)
    held = engine.memory_used()
    assert held["factors"] > 0 and held["derived"] > 0 and held["merges"] > 0
    engine.release_memory(keep_merges=True)
    assert engine.memory_used() == {"factors": 0, "derived": 0, "merges": held["merges"]}
    engine.release_memory()
    assert engine.memory_used() == {"factors": 0, "derived": 0, "merges": 0}
    # the next merge reads every factor back from disk: no task matrix is decomposed again
    monkeypatch.setattr(linalg, "thin_svd", lambda x: pytest.fail(f"an SVD of shape {tuple(x.shape)} was redone"))
    misses = engine.cache.misses
    again = engine.merge("iso_cts", common_frac=0.5, alpha=1.0)
    assert engine.cache.misses == misses
    for key in first:  # the same factors (read back, contiguous, so BLAS may round differently in the last bit)
        torch.testing.assert_close(again[key], first[key], rtol=1e-6, atol=1e-7, msg=key)


def test_an_engine_without_a_memory_budget_holds_no_factors(vit_state_dicts, tmp_path):
    base, ft = vit_state_dicts
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu", memory_bytes=0)
    kept = Engine(TaskSet(base, ft), cache_dir=tmp_path / "cache", device="cpu")
    merged = engine.merge("tsv_m", k_frac=0.25)
    assert engine.memory_used()["factors"] == 0
    for key, value in kept.merge("tsv_m", k_frac=0.25).items():
        assert torch.equal(merged[key], value), key
