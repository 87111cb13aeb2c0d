"""Merging a decoder LLM pool at its real size: a Qwen2.5-1.5B-shaped base and 3 full fine-tunes (random weights,
bf16 safetensors shards, as on the hub), merged with TSV-M by the CLI into a Hugging Face folder.

Prints ``name: value`` lines:

    pool_gb                      size of the pool on disk (4 models)
    merge_seconds                wall time of ``python -m spectral merge … --method tsv_m -o OUT`` (SVD cache built)
    merge_peak_rss_gib           peak resident memory of that command                       (goal ≤ 8 GiB)
    model_gib                    one model's float32 size, the memory a whole-model merge would hold per model
    peak_rss_over_model          peak RSS / one model's float32 size (a whole-model merge of 4 models needs ≥ 4)
    output_loads                 1 when ``AutoModelForCausalLM.from_pretrained(OUT)`` loads the merged folder

The shapes are Qwen2.5-1.5B's (hidden 1536, 28 layers, intermediate 8960, 12 query and 2 key/value heads of 128,
vocabulary 151,936, tied embeddings). ``--layers`` shrinks the depth for a quick run; the pool is written once into
``--root`` (default: a temporary folder) and reused when it exists.

    python bench/lm.py [--layers 28] [--tasks 3] [--root /tmp/qwen-pool] [--keep]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, VOCAB = 1536, 8960, 12, 2, 151936
HEAD_DIM = HIDDEN // HEADS
SHARD_BYTES = 2 * 1024**3  # the hub's Qwen2.5 shards are ~2-4 GB


def qwen_config(layers: int) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "hidden_act": "silu", "use_sliding_window": False, "bos_token_id": 151643, "eos_token_id": 151643,
    }


def qwen_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    """Stored tensors of Qwen2ForCausalLM (tied embeddings: no lm_head)."""
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    kv = KV_HEADS * HEAD_DIM
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.q_proj.bias": (HIDDEN,),
            p + "self_attn.k_proj.weight": (kv, HIDDEN), p + "self_attn.k_proj.bias": (kv,),
            p + "self_attn.v_proj.weight": (kv, HIDDEN), p + "self_attn.v_proj.bias": (kv,),
            p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN), p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
        })
    return shapes


def write_model(folder: Path, layers: int, seed: int, base_seed: int | None) -> None:
    """One model folder: the base (``base_seed`` None) or a fine-tune = base + rank-16 delta + small noise, in hub
    shards written one tensor at a time (no more than one tensor is ever in memory)."""
    from spectral.checkpoints.hf import write_safetensors_shards

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(qwen_config(layers), indent=2))
    shapes = qwen_shapes(layers)
    index_of = {key: i for i, key in enumerate(shapes)}

    def tensor_of(key: str) -> torch.Tensor:
        index, shape = index_of[key], shapes[key]
        g = torch.Generator().manual_seed(1000 * (seed if base_seed is None else base_seed) + index)
        if len(shape) == 1:
            value = torch.ones(shape) if "norm" in key else torch.randn(shape, generator=g) * 0.02
        else:
            value = torch.randn(shape, generator=g) * 0.02
        if base_seed is not None:
            d = torch.Generator().manual_seed(7919 * seed + index)
            if len(shape) == 2:
                rank = 16
                value += (torch.randn(shape[0], rank, generator=d) @ torch.randn(rank, shape[1], generator=d)) * 2e-3
            value += torch.randn(shape, generator=d) * 1e-4
        return value.to(torch.bfloat16)

    layout = {key: (torch.bfloat16, tuple(shape)) for key, shape in shapes.items()}
    write_safetensors_shards(folder, layout, tensor_of, max_shard_bytes=SHARD_BYTES, metadata={"format": "pt"})


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--root", default=None, help="where the pool is written (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the pool and the output folder")
    parser.add_argument("--method", default="tsv_m")
    args = parser.parse_args(argv)

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="spectral-lm-bench-"))
    marker = root / f"written-{args.layers}-{args.tasks}"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        write_model(root / "qwen", args.layers, seed=0, base_seed=None)
        for t in range(args.tasks):
            write_model(root / f"qwen_task{t}", args.layers, seed=t + 1, base_seed=0)
        marker.write_text("")
        print(f"# wrote the pool in {time.perf_counter() - started:.0f} s")
    print(f"pool_gb: {folder_bytes(root) / 1e9:.2f}")
    out = root / "merged"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "spectral", "merge", "--base", str(root / "qwen"),
           "--finetuned", *[str(root / f"qwen_task{t}") for t in range(args.tasks)],
           "--method", args.method, "--cache-dir", str(root / "cache"), "-o", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
    model_gib = sum(torch.Size(s).numel() for s in qwen_shapes(args.layers).values()) * 4 / 1024**3
    print(f"merge_seconds: {seconds:.1f}")
    print(f"merge_peak_rss_gib: {peak_gib:.2f}")
    print(f"model_gib: {model_gib:.2f}")
    print(f"peak_rss_over_model: {peak_gib / model_gib:.2f}")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    print(f"output_loads: {int(model.config.num_hidden_layers == args.layers)}")
    del model
    if not args.keep and not args.root:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
