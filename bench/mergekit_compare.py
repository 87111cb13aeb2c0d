"""spectral's `merge --mergekit-config` against mergekit's own `mergekit-yaml`, tensor by tensor (issue 25).

mergekit is not a dependency of spectral: install it into a separate environment and name its python:

    python -m venv /work/venv-mergekit && /work/venv-mergekit/bin/pip install mergekit
    nice -n 19 python bench/mergekit_compare.py --mergekit-python /work/venv-mergekit/bin/python

Writes a tiny Llama base and 3 fine-tunes (LlamaForCausalLM, float32, random weights, seeded), runs every config
below with both tools, and prints the largest absolute difference per config over every tensor (and the tensor where
it occurs). DARE at density < 1 draws random masks (mergekit from torch's global generator, rescaled to each tensor's
L1 norm; spectral from a seeded generator per tensor, rescaled by 1/(1 − p)): those rows compare the merged task
vector's norm relative to the density-1 merge instead of the entries.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

torch.set_num_threads(1)

CONFIGS = {
    "linear": ("linear", {"normalize": True}, [1.0, 1.0, 1.0], None, True),
    "linear_weighted": ("linear", {}, [0.5, 0.3, 0.2], None, True),
    "task_arithmetic": ("task_arithmetic", {"lambda": 0.8}, [1.0, 1.0, 1.0], None, True),
    "task_arithmetic_weighted": ("task_arithmetic", {}, [0.7, 0.4, 0.2], None, True),
    "ties_d0.5": ("ties", {}, [1.0, 1.0, 1.0], 0.5, True),
    "ties_d0.2_lambda": ("ties", {"lambda": 0.9}, [0.6, 0.6, 0.6], 0.2, True),
    "ties_weighted_unnormalized": ("ties", {"normalize": False}, [0.6, 0.3, 0.5], 0.3, True),
    "dare_linear_d1": ("dare_linear", {}, [0.5, 0.5, 0.5], 1.0, True),
    "dare_ties_d1": ("dare_ties", {}, [1.0, 1.0, 1.0], 1.0, True),
    "dare_linear_d0.5": ("dare_linear", {}, [0.5, 0.5, 0.5], 0.5, False),
    "dare_ties_d0.5": ("dare_ties", {}, [1.0, 1.0, 1.0], 0.5, False),
}


def write_models(root: Path, tasks: int = 3) -> tuple[Path, list[Path]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)
    base.save_pretrained(root / "base", safe_serialization=True)
    paths = []
    for t in range(tasks):
        model = LlamaForCausalLM(config)
        model.load_state_dict(base.state_dict())
        g = torch.Generator().manual_seed(100 + t)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        model.save_pretrained(root / f"task{t}", safe_serialization=True)
        paths.append(root / f"task{t}")
    return root / "base", paths


def write_config(path: Path, method: str, top: dict, weights: list[float], density: float | None,
                 base: Path, models: list[Path]) -> None:
    import yaml

    entries = []
    for m, w in zip(models, weights):
        params = {"weight": w}
        if density is not None:
            params["density"] = density
        entries.append({"model": str(m), "parameters": params})
    if method == "linear":  # mergekit's linear averages base_model too: weight 0 leaves it out
        entries.insert(0, {"model": str(base), "parameters": {"weight": 0.0}})
    config = {"merge_method": method, "base_model": str(base), "models": entries, "dtype": "float32"}
    if top:
        config["parameters"] = top
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def load(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mergekit-python", required=True, help="python of the environment mergekit is installed in")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    mergekit_yaml = Path(args.mergekit_python).parent / "mergekit-yaml"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mergekit_compare_"))
    base, models = write_models(work)
    base_sd = load(base)
    rows = []
    for name, (method, top, weights, density, exact) in CONFIGS.items():
        cfg = work / f"{name}.yml"
        write_config(cfg, method, top, weights, density, base, models)
        mk_out, sp_out = work / f"mk_{name}", work / f"sp_{name}"
        subprocess.run([str(mergekit_yaml), str(cfg), str(mk_out), "--allow-crimes"],
                       check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "spectral", "merge", "--mergekit-config", str(cfg), "-o", str(sp_out),
                        "--cache-dir", str(work / "cache")], check=True, capture_output=True)
        mk, sp = load(mk_out), load(sp_out)
        missing = sorted(set(mk) ^ set(sp))
        if exact:
            worst, where = 0.0, ""
            for key in sorted(set(mk) & set(sp)):
                diff = float((mk[key].double() - sp[key].double()).abs().max())
                if diff > worst:
                    worst, where = diff, key
            rows.append((name, f"max |spectral − mergekit| = {worst:.2e}", where, missing))
        else:
            ref_cfg = work / f"{name}_ref.yml"
            write_config(ref_cfg, method, top, weights, 1.0, base, models)
            subprocess.run([str(mergekit_yaml), str(ref_cfg), str(work / f"mk_{name}_ref"), "--allow-crimes"],
                           check=True, capture_output=True)
            ref = load(work / f"mk_{name}_ref")
            keys = sorted(set(mk) & set(sp) & set(ref))

            def rel(merged: dict, keys: list = keys, ref: dict = ref) -> float:
                num = sum(float((merged[k].double() - base_sd[k].double()).norm() ** 2) for k in keys)
                den = sum(float((ref[k].double() - base_sd[k].double()).norm() ** 2) for k in keys)
                return (num / den) ** 0.5

            rows.append((name, f"‖Δ‖/‖Δ(density 1)‖: spectral {rel(sp):.3f}, mergekit {rel(mk):.3f}", "", missing))
    for name, text, where, missing in rows:
        extra = f" at {where}" if where else ""
        extra += f"; keys in one output only: {missing}" if missing else ""
        print(f"{name:28s} {text}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
