"""LoRA adapters: the SVD of s·B·A from the factors, and a Llama-3-8B-shaped pool of 8 rank-16 adapters merged with
TSV-M under a memory goal (issue 25). Prints ``name: value`` lines, ratios measured in the same run.

(a) one rank-16 update of a 4096 × 4096 layer:

    factor_svd_ms              SVD from the factors (QR of B and Aᵀ, 16 × 16 core), median of repeats
    dense_svd_s                torch.linalg.svd of the dense float32 B·A (what a dense tool does)
    factor_over_dense_speedup  dense / factor                                        (goal ≥ 50)
    factor_sigma_max_rel_err   max |σ_factor − σ_float64| / σ₁ over the 16 singular values
    dense_sigma_max_rel_err    the same for the dense float32 SVD (float32 precision, for comparison)
    factor_recon_max_rel_err   max |U S Vᵀ − s·B·A (float64)| / max |s·B·A|

(b) a Llama-3-8B-shaped base (hidden 4096, 32 layers, intermediate 14336, 32 query / 8 key-value heads of 128,
vocabulary 128,256, untied lm_head; random bf16 weights in sharded safetensors, memory-mapped) and 8 PEFT LoRA
adapters of rank 16 on q, k, v, o, gate, up, down (float32, as PEFT saves them):

    base_gb / adapters_gb      sizes on disk
    open_validate_s            opening the pool and validating it (reads the adapted base weights once)
    cache_build_s              SVDs of every adapted layer of every task from the factors
    cache_build_peak_rss_gib   peak resident memory during open + build (VmRSS, file pages included)
    merge_write_s              TSV-M (k_frac 1/8) written as a Hugging Face folder, shard by shard (lazy merge)
    merge_write_peak_rss_gib   peak resident memory during the merge and write              (goal ≤ 4 GiB)
    peak_rss_anon_gib          peak anonymous memory (heap) over both phases
    model_gib                  one model's float32 size (what a whole-model dense merge holds per model)

The base and adapters are written into ``--root`` (default: a temporary folder; about 16 GB for the full depth:
written with low priority, and deleted at the end unless ``--keep``). ``--layers N`` keeps only N decoder layers
for a quick run (the embedding and lm_head stay full size).

    nice -n 19 python bench/lora.py [--layers 32] [--tasks 8] [--root /tmp/llama-lora] [--keep] [--skip-dense]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 8, 128256
HEAD_DIM = HIDDEN // HEADS
KV = KV_HEADS * HEAD_DIM
SHARD_BYTES = 1 << 30
RANK = 16
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# -- (a) factor SVD vs dense SVD ------------------------------------------------------------------------------------
def bench_factor_svd(repeats: int = 20, dense_repeats: int = 1) -> None:
    from spectral.lora import factor_svd

    g = torch.Generator().manual_seed(0)
    m = n = 4096
    B = torch.randn(m, RANK, generator=g) * 0.02
    A = torch.randn(RANK, n, generator=g) * 0.02
    scale = 32 / RANK
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        U, S, V = factor_svd(B, A, scale)
        times.append(time.perf_counter() - t0)
    factor_s = statistics.median(times)
    dense = (B * scale) @ A
    dense_times = []
    for _ in range(dense_repeats):
        t0 = time.perf_counter()
        _, S_dense, _ = torch.linalg.svd(dense, full_matrices=False)
        dense_times.append(time.perf_counter() - t0)
    dense_s = min(dense_times)
    exact = (B.double() * scale) @ A.double()
    S64 = torch.linalg.svdvals(exact)[:RANK]
    s1 = float(S64[0])
    print(f"factor_svd_ms: {factor_s * 1e3:.2f}")
    print(f"dense_svd_s: {dense_s:.2f}")
    print(f"factor_over_dense_speedup: {dense_s / factor_s:.0f}")
    print(f"factor_sigma_max_rel_err: {float((S.double() - S64).abs().max()) / s1:.2e}")
    print(f"dense_sigma_max_rel_err: {float((S_dense[:RANK].double() - S64).abs().max()) / s1:.2e}")
    recon = (U.double() * S.double()) @ V.double().T
    print(f"factor_recon_max_rel_err: {float((recon - exact).abs().max()) / float(exact.abs().max()):.2e}")


# -- (b) Llama-3-8B-shaped pool -------------------------------------------------------------------------------------
def llama_config(layers: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": 128001,
    }


def llama_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (KV, HIDDEN),
            p + "self_attn.v_proj.weight": (KV, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN), p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
        })
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def _random_bf16(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Random N(0, 0.02²) bf16, generated in row chunks (no full float32 temporary)."""
    out = torch.empty(shape, dtype=torch.bfloat16)
    flat = out.view(-1)
    chunk = 1 << 24
    for start in range(0, flat.numel(), chunk):
        stop = min(flat.numel(), start + chunk)
        flat[start:stop] = (torch.randn(stop - start, generator=g) * 0.02).to(torch.bfloat16)
    return out


def write_base(folder: Path, layers: int) -> None:
    from spectral.checkpoints.hf import write_safetensors_shards

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(llama_config(layers), indent=2))
    shapes = llama_shapes(layers)
    g = torch.Generator().manual_seed(0)  # drawn from in the layout's order, as the tensors are written

    def tensor_of(key: str) -> torch.Tensor:
        shape = shapes[key]
        return torch.ones(shape, dtype=torch.bfloat16) if len(shape) == 1 else _random_bf16(shape, g)

    layout = {key: (torch.bfloat16, tuple(shape)) for key, shape in shapes.items()}
    write_safetensors_shards(folder, layout, tensor_of, max_shard_bytes=SHARD_BYTES, metadata={"format": "pt"})


def write_adapter(folder: Path, layers: int, seed: int) -> None:
    """A PEFT LoRA folder as ``save_pretrained`` writes it for a LlamaForCausalLM (rank 16, alpha 32)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 2 * RANK,
              "target_modules": list(TARGETS), "lora_dropout": 0.0, "bias": "none", "use_rslora": False,
              "base_model_name_or_path": "llama-3-8b-shaped"}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    shapes = llama_shapes(layers)
    g = torch.Generator().manual_seed(1000 + seed)
    tensors = {}
    for key, shape in shapes.items():
        module = key[: -len(".weight")]
        if len(shape) != 2 or module.rsplit(".", 1)[-1] not in TARGETS:
            continue
        out, inp = shape
        tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(RANK, inp, generator=g) / inp ** 0.5
        tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out, RANK, generator=g) * 1e-3
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})


class PeakMemory:
    """Samples /proc/self/status every 20 ms: peak VmRSS and RssAnon in bytes."""

    def __init__(self) -> None:
        self.peak_rss = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> tuple[int, int]:
        rss = anon = 0
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
        return rss, anon

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, anon = self.read()
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            self._stop.wait(0.02)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        rss, anon = self.read()
        self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_llama_pool(args: argparse.Namespace) -> None:
    from spectral.checkpoints.hf import write_hf_folder
    from spectral.checkpoints.lora import lora_pool_of_folders
    from spectral.engine import Engine
    from spectral.heap import release_memory
    from spectral.taskset import TaskSet

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="spectral-lora-bench-"))
    marker = root / f"written-{args.layers}-{args.tasks}"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        write_base(root / "llama", args.layers)
        for t in range(args.tasks):
            write_adapter(root / f"lora_task{t}", args.layers, t)
        marker.write_text("")
        print(f"# wrote the pool in {time.perf_counter() - t0:.0f} s")
    adapters = [root / f"lora_task{t}" for t in range(args.tasks)]
    print(f"base_gb: {folder_bytes(root / 'llama') / 1e9:.2f}")
    print(f"adapters_gb: {sum(folder_bytes(a) for a in adapters) / 1e9:.2f}")
    cache_dir = root / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    out = root / "merged"
    shutil.rmtree(out, ignore_errors=True)
    with PeakMemory() as build_mem:
        t0 = time.perf_counter()
        pool = lora_pool_of_folders(root / "llama", adapters)
        ts = TaskSet.from_pool(pool)
        opened = time.perf_counter()
        # as the CLI's one-shot merge: no factors or derived data kept in memory between layers
        engine = Engine(ts, cache_dir=cache_dir, device="cpu", memory_bytes=0, derived_bytes=0, merges_kept=0)
        computed = engine.build_cache()
        built = time.perf_counter()
    print(f"open_validate_s: {opened - t0:.1f}")
    print(f"cache_build_s: {built - opened:.1f}")
    print(f"cache_entries: {computed}")
    print(f"cache_build_peak_rss_gib: {build_mem.peak_rss / 2**30:.2f}")
    release_memory()
    with PeakMemory() as merge_mem:
        t0 = time.perf_counter()
        merged = engine.lazy_merge("tsv_m")
        write_hf_folder(out, pool.base, merged, metadata={"method": "tsv_m", "merged_by": "spectral"},
                        max_shard_bytes=args.shard_bytes)
        merge_s = time.perf_counter() - t0
    print(f"merge_write_s: {merge_s:.1f}")
    print(f"merge_write_peak_rss_gib: {merge_mem.peak_rss / 2**30:.2f}")
    print(f"peak_rss_anon_gib: {max(build_mem.peak_anon, merge_mem.peak_anon) / 2**30:.2f}")
    model_gib = sum(torch.Size(s).numel() for s in llama_shapes(args.layers).values()) * 4 / 2**30
    print(f"model_gib: {model_gib:.2f}")
    # spot check: one adapted weight of the output equals base + the TSV-M delta the engine computes for it
    from safetensors import safe_open

    key = "model.layers.0.self_attn.q_proj.weight"
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"] if (
        out / "model.safetensors.index.json").is_file() else None
    file = out / (index[key] if index else "model.safetensors")
    with safe_open(str(file), framework="pt") as f:
        written = f.get_tensor(key)
    expected = engine.merged_key(engine.resolve("tsv_m", {})[0], key[len("model."):], 1.0,
                                 engine.resolve("tsv_m", {})[2])
    print(f"output_matches_engine: {int(torch.equal(written, expected))}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--root", default=None, help="where the pool is written (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the pool and the merged folder")
    parser.add_argument("--shard-bytes", type=int, default=1 << 30, help="output shard size (default 1 GiB)")
    parser.add_argument("--skip-dense", action="store_true", help="only the pool benchmark (b)")
    parser.add_argument("--skip-pool", action="store_true", help="only the factor-SVD benchmark (a)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"threads: {args.threads}")
    if not args.skip_dense:
        bench_factor_svd()
    if not args.skip_pool:
        bench_llama_pool(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
