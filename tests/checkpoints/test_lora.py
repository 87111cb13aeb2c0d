"""LoRA adapters as tasks (issue 25): the SVD of s·B·A from the factors, PEFT folders read against peft's own merge,
mixed ranks and target modules, and methods on a LoRA pool equal to the same methods on the dense ΔW pool."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from spectral.checkpoints.lora import AdapterKeyError, AdapterShapeError, LoRAState, lora_pool_of_folders
from spectral.engine import Engine
from spectral.lora import LowRankDelta, factor_svd, lora_scale, stack_factors
from spectral.taskset import TaskSet

torch.set_num_threads(1)


# -- the factor SVD ------------------------------------------------------------------------------------------------
def _dense64(B: torch.Tensor, A: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * B.double() @ A.double()


@pytest.mark.parametrize("m,n,r", [(48, 40, 4), (40, 48, 8), (30, 30, 30), (20, 50, 24)])
def test_factor_svd_equals_the_dense_svd(m: int, n: int, r: int) -> None:
    g = torch.Generator().manual_seed(m * n + r)
    B, A = torch.randn(m, r, generator=g), torch.randn(r, n, generator=g)
    U, S, V = factor_svd(B, A, 0.7)
    q = min(r, m, n)
    assert U.shape == (m, q) and S.shape == (q,) and V.shape == (n, q) and U.dtype == torch.float32
    dense = _dense64(B, A, 0.7)
    ref = torch.linalg.svdvals(dense)[:q]
    assert torch.allclose(S.double(), ref, rtol=1e-6, atol=1e-6 * float(ref[0]))
    assert torch.all(S[:-1] >= S[1:])
    assert torch.allclose((U.double() * S.double()) @ V.double().T, dense, atol=1e-5 * float(ref[0]))
    eye = torch.eye(q, dtype=torch.float64)
    assert torch.allclose(U.double().T @ U.double(), eye, atol=1e-6)
    assert torch.allclose(V.double().T @ V.double(), eye, atol=1e-6)


def test_rank_deficient_factors_keep_r_orthonormal_triplets_with_zero_tail() -> None:
    g = torch.Generator().manual_seed(1)
    m, n, r = 60, 50, 8
    B = torch.randn(m, r, generator=g)
    B[:, 5:] = B[:, :3] * 2.0  # rank(B) = 5
    A = torch.randn(r, n, generator=g)
    U, S, V = factor_svd(B, A, 1.0)
    assert S.shape == (r,)
    assert float(S[5:].max()) < 1e-5 * float(S[0])  # the rank deficit shows as zero singular values
    assert float(S[4]) > 1e-2 * float(S[0])
    assert torch.allclose(U.double().T @ U.double(), torch.eye(r, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(V.double().T @ V.double(), torch.eye(r, dtype=torch.float64), atol=1e-6)
    dense = _dense64(B, A, 1.0)
    assert torch.allclose((U.double() * S.double()) @ V.double().T, dense, atol=1e-5 * float(S[0]))
    # zero factors: r triplets, all σ = 0
    _, S0, _ = factor_svd(torch.zeros(m, r), A, 1.0)
    assert S0.shape == (r,) and float(S0.abs().max()) == 0.0


def test_rslora_scale_and_zero_delta() -> None:
    assert lora_scale(16, 4) == 4.0
    assert lora_scale(16, 4, use_rslora=True) == 8.0  # alpha / √r
    z = LowRankDelta.zero((5, 7))
    assert z.rank == 0 and torch.equal(z.dense(), torch.zeros(5, 7))
    U, S, V = z.svd()
    assert U.shape == (5, 0) and S.shape == (0,) and V.shape == (7, 0)
    U, S, V = stack_factors([z.svd(), factor_svd(torch.randn(5, 2), torch.randn(2, 7))])
    assert U.shape == (2, 5, 2) and S.shape == (2, 2) and torch.equal(S[0], torch.zeros(2))


# -- PEFT folders on a tiny Llama --------------------------------------------------------------------------------
def _tiny_llama(folder: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)


def _adapter(base: Path, folder: Path, *, r: int, alpha: float, targets: list[str], seed: int,
             rslora: bool = False) -> dict[str, torch.Tensor]:
    """Write a PEFT LoRA folder with random (non-zero) B, and return peft's merge_and_unload state dict."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_rslora=rslora,
                                                  lora_dropout=0.0, init_lora_weights=True))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    peft_model.save_pretrained(folder)
    return {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}


@pytest.fixture(scope="module")
def llama_pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    _tiny_llama(root / "base")
    merged = {
        "a": _adapter(root / "base", root / "a", r=4, alpha=8, targets=["q_proj", "v_proj"], seed=1),
        "b": _adapter(root / "base", root / "b", r=8, alpha=16, targets=["v_proj", "down_proj", "o_proj"], seed=2,
                      rslora=True),
    }
    return root, merged


def _dense_taskset(lora: TaskSet) -> TaskSet:
    """The same pool with every task's Δ formed densely (a full fine-tune pool), on the same keys."""
    base = {k: lora.base[k].float().clone() for k in lora.keys}
    ft = {t: {k: base[k] + lora.task_matrix(t, k) for k in lora.keys} for t in lora.task_names}
    return TaskSet(base, ft, matrix_filter=lora.matrix_filter)


def test_peft_adapters_give_peft_merge_and_unload_deltas(llama_pool) -> None:
    root, merged = llama_pool
    pool = lora_pool_of_folders(root / "base", [root / "a", root / "b"])
    ts = TaskSet.from_pool(pool)
    assert ts.low_rank_tasks == [0, 1]
    # keys: the union of the adapted weights, in the base's order
    expected = {f"layers.{i}.{m}.weight" for i in range(2)
                for m in ("self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.down_proj")}
    assert set(ts.keys) == expected and set(ts.matrix_keys) == expected
    base = load_file(str(root / "base" / "model.safetensors"))
    for t in ("a", "b"):
        for key in ts.keys:
            peft_delta = merged[t]["model." + key] - base["model." + key]
            ours = ts.task_matrix(t, key)
            assert torch.allclose(ours, peft_delta, atol=2e-6), (t, key)
            state = pool.finetuned_state_dict(t)
            assert isinstance(state, LoRAState)
            assert torch.allclose(state[key], merged[t]["model." + key], atol=2e-6)
    # a module a task does not adapt: ΔW = 0, rank 0
    assert ts.task_low_rank("a", "layers.0.mlp.down_proj.weight").rank == 0
    assert torch.equal(ts.task_matrix("a", "layers.0.mlp.down_proj.weight"), torch.zeros(32, 48))
    # rsLoRA: b's scale is alpha / √r
    assert ts.task_low_rank("b", "layers.0.self_attn.v_proj.weight").scale == pytest.approx(16 / math.sqrt(8))


def test_engine_factors_of_mixed_ranks_are_the_svd_of_the_dense_update(llama_pool, tmp_path) -> None:
    root, _ = llama_pool
    ts = TaskSet.from_pool(lora_pool_of_folders(root / "base", [root / "a", root / "b"]))
    engine = Engine(ts, cache_dir=tmp_path, device="cpu")
    computed = engine.build_cache()
    assert computed == 4 + 6  # a: q, v × 2 layers; b: v, o, down × 2 layers; unadapted modules are not decomposed
    assert engine.cache_status() == {"cached": 8 * 2, "total": 8 * 2}
    for key in ts.matrix_keys:
        U, S, V = engine.layer(key).task_svd()
        assert U.shape[0] == 2 and U.shape[2] == S.shape[1] == V.shape[2] <= 8
        for t in range(2):
            dense = ts.task_matrix(t, key).double()
            rebuilt = (U[t].double() * S[t].double()) @ V[t].double().T
            assert torch.allclose(rebuilt, dense, atol=1e-5 * max(1.0, float(dense.abs().max())))
            ref = torch.linalg.svdvals(dense)[: S.shape[1]]
            assert torch.allclose(S[t].double(), ref, atol=1e-5 * max(1.0, float(ref.max())))


@pytest.mark.parametrize("method,params", [("tsv_m", {}), ("ties", {}), ("task_arithmetic", {"alpha": 0.7}),
                                           ("iso_c", {"rank_cut": "numerical"}), ("cart", {}), ("magmax", {}), ("ties", {"trim": "per_tensor"}),
                                           ("tsv_c_check", {})])
def test_methods_on_a_lora_pool_equal_the_dense_delta_pool(llama_pool, tmp_path, method, params) -> None:
    root, _ = llama_pool
    lora = TaskSet.from_pool(lora_pool_of_folders(root / "base", [root / "a", root / "b"]))
    dense = _dense_taskset(lora)
    e_lora = Engine(lora, cache_dir=tmp_path / "l", device="cpu")
    e_dense = Engine(dense, cache_dir=tmp_path / "d", device="cpu")
    if method == "tsv_c_check":
        out_l, out_d = e_lora.compress(1, k_frac=0.5), e_dense.compress(1, k_frac=0.5)
    else:
        out_l, out_d = e_lora.merge(method, **params), e_dense.merge(method, **params)
    for key in lora.keys:
        ref = out_d[key].float() - dense.base[key]
        got = out_l[key].float() - lora.base[key].float()
        assert torch.allclose(got, ref, atol=1e-5 * max(1.0, float(ref.abs().max()))), (method, key)


def test_cli_merges_adapters_into_a_loadable_folder(llama_pool, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from spectral.cli import main

    root, _ = llama_pool
    out = tmp_path / "merged"
    rc = main(["merge", "--base", str(root / "base"), "--finetuned", str(root / "a"), str(root / "b"),
               "--method", "tsv_m", "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
    assert rc == 0
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base = load_file(str(root / "base" / "model.safetensors"))
    state = model.state_dict()
    # not adapted by any task: unchanged
    assert torch.equal(state["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(state["model.layers.0.self_attn.v_proj.weight"], base["model.layers.0.self_attn.v_proj.weight"])


# -- named errors ------------------------------------------------------------------------------------------------
def _copy_adapter(src: Path, dst: Path, *, tensors=None, config=None) -> Path:
    dst.mkdir()
    cfg = json.loads((src / "adapter_config.json").read_text())
    (dst / "adapter_config.json").write_text(json.dumps({**cfg, **(config or {})}))
    weights = load_file(str(src / "adapter_model.safetensors"))
    save_file(tensors(weights) if tensors else weights, str(dst / "adapter_model.safetensors"))
    return dst


def test_bad_adapters_are_named_errors_and_exit_2(llama_pool, tmp_path, capsys) -> None:
    from spectral.cli import main

    root, _ = llama_pool

    def widen(w):
        key = next(k for k in w if k.endswith("lora_A.weight"))
        return {**w, key: torch.zeros(w[key].shape[0], 33)}

    bad_shape = _copy_adapter(root / "a", tmp_path / "bad_shape", tensors=widen)
    with pytest.raises(AdapterShapeError, match=r"adapter_model\.safetensors.*lora_A.*\(4, 33\).*\(32, 32\)"):
        TaskSet.from_pool(lora_pool_of_folders(root / "base", [bad_shape]))

    bad_target = _copy_adapter(root / "a", tmp_path / "bad_target", config={"target_modules": ["q_proj", "qkv"]})
    with pytest.raises(AdapterKeyError, match=r"adapter_config\.json.*'qkv'"):
        TaskSet.from_pool(lora_pool_of_folders(root / "base", [bad_target]))

    def rename(w):
        return {k.replace("q_proj", "nonexistent_proj"): v for k, v in w.items()}

    bad_key = _copy_adapter(root / "a", tmp_path / "bad_key", tensors=rename, config={"target_modules": "x"})
    with pytest.raises(AdapterKeyError, match="nonexistent_proj"):
        TaskSet.from_pool(lora_pool_of_folders(root / "base", [bad_key]))

    bad_rank = _copy_adapter(root / "a", tmp_path / "bad_rank", config={"r": 5})
    rc = main(["merge", "--base", str(root / "base"), "--finetuned", str(bad_rank), "--method", "tsv_m",
               "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "rank 4" in capsys.readouterr().err
