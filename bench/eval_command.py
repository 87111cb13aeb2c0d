"""Peak RSS of the whole ``python -m spectral eval`` command, merge and evaluation together, on a random-weight
pool of the real shapes stored as a user stores one (safetensors checkpoints and a pool.yaml).

``bench/scale.py`` measures the evaluation alone; a user runs the CLI, which in one process also opens every
checkpoint, builds the SVD cache, merges, and only then evaluates. This writes a base model and ``--tasks``
fine-tuned ones (base + full-rank noise of 1e-3, each a 351 MB file for ViT-B/32), a head per task, and JPEG test
folders (``bench/scale.py``'s ``write_folders`` at ``--scale``), then runs in fresh processes, one after another,
sharing the cache folder and the results store:

1. ``python -m spectral eval --method zeroshot``: zero-shot and fine-tuned models, evaluation only (the baseline);
2. ``python -m spectral eval --method tsv_m``: hashing every checkpoint, the SVD cache (cold), the merge, and the
   evaluation of the merged model.

Each process's peak RSS is its ``ru_maxrss`` from ``wait4`` (what ``/usr/bin/time -v`` reports). Lines
``name: value``:

    eval_zeroshot_peak_rss_mb          the baseline process
    eval_tsv_m_peak_rss_mb             the merge-and-evaluate process (issue goal: ≤ 4096 for ViT-B/32)
    tsv_m_over_zeroshot_peak_rss       what merging in the same process adds, as a ratio
    checkpoints_mb                     the pool's checkpoints on disk (what holding them all would take)

    python bench/eval_command.py                           # ViT-B/32 × 8, 0.005 of the real test sets (~440 images)
    python bench/eval_command.py --tasks 2 --scale 0.002   # a few minutes
    python bench/eval_command.py --format pt               # torch.save checkpoints instead of safetensors
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from scale import MAX_CLASSES, SUITE, write_folders  # noqa: E402


def write_pool(root: Path, data: Path, tasks: int, architecture: str, noise: float = 1e-3,
               fmt: str = "safetensors") -> int:
    """Base, fine-tuned and head files and ``pool.yaml`` under ``root``; returns the checkpoints' bytes. ``fmt``:
    ``safetensors`` or ``pt`` (``torch.save`` zip archives) for the model checkpoints."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from spectral.checkpoints import architecture as arch
    from spectral.pool import add_visual_prefix

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    base = {k: v.contiguous() for k, v in add_visual_prefix(arch.build_image_encoder(architecture).state_dict()).items()}
    ext = "safetensors" if fmt == "safetensors" else "pt"

    def save(state: dict, name: str) -> None:
        if fmt == "safetensors":
            save_file(state, str(root / name))
        else:
            torch.save(state, root / name)

    save(base, f"base.{ext}")
    embed = base["visual.proj"].shape[1]
    g = torch.Generator().manual_seed(1)
    lines = [f"name: bench-{architecture}-{tasks}", f"architecture: {architecture}", f"base: base.{ext}",
             f"data_root: {data}", "tasks:"]
    for task, _, classes in SUITE[:tasks]:
        finetuned = {k: (v + noise * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v
                     for k, v in base.items()}
        save(finetuned, f"{task}.{ext}")
        del finetuned
        head = F.normalize(torch.randn(min(classes, MAX_CLASSES), embed, generator=g), dim=-1)
        save_file({"weight": head}, str(root / f"head_{task}.safetensors"))
        # generated stand-in data (at most MAX_CLASSES classes), not the benchmark's: a data set name that is not
        # one of the 20 makes spectral read it as plain image folders instead of refusing it as the benchmark
        lines += [f"  - name: {task}", f"    checkpoint: {task}.{ext}", f"    head: head_{task}.safetensors",
                  f"    dataset: {task}-standin", f"    data: {task}"]
    (root / "pool.yaml").write_text("\n".join(lines) + "\n")
    return sum(p.stat().st_size for p in root.glob(f"*.{ext}") if not p.name.startswith("head_"))


def run_eval(pool: Path, method: str, cache: Path, store: Path, threads: int) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, the command's last output line) of one ``spectral eval`` process."""
    cmd = [sys.executable, "-m", "spectral", "eval", "--pool", str(pool), "--method", method,
           "--cache-dir", str(cache), "--store", str(store), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, text.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--scale", type=float, default=0.005, help="fraction of the real test-set sizes")
    parser.add_argument("--architecture", default="ViT-B-32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--format", default="safetensors", choices=["safetensors", "pt"],
                        help="checkpoint files: safetensors, or torch.save zip archives")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--quick", action="store_true", help="tiny images (64 px), for the smoke test")
    args = parser.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="spectral-evalcmd-"))
    try:
        t0 = time.perf_counter()
        sizes = write_folders(work / "data", args.scale, args.tasks, size=64 if args.quick else 256)
        checkpoint_bytes = write_pool(work / "pool", work / "data", args.tasks, args.architecture, fmt=args.format)
        print(f"# {args.architecture} × {args.tasks}: {checkpoint_bytes / 2**20:.0f} MB of {args.format} checkpoints, "
              f"{sum(sizes.values())} test images, written in {time.perf_counter() - t0:.0f} s", flush=True)
        cache, store = work / "cache", work / "results.sqlite"
        peaks = {}
        for method in ("zeroshot", "tsv_m"):
            peak, seconds, last = run_eval(work / "pool" / "pool.yaml", method, cache, store, args.threads)
            peaks[method] = peak
            print(f"# eval --method {method}: {seconds:.0f} s, peak RSS {peak:.0f} MB ({last})", flush=True)
        print(f"architecture: {args.architecture}")
        print(f"tasks: {args.tasks}")
        print(f"checkpoint_format: {args.format}")
        print(f"test_images: {sum(sizes.values())}")
        print(f"checkpoints_mb: {checkpoint_bytes / 2**20:.0f}")
        print(f"eval_zeroshot_peak_rss_mb: {peaks['zeroshot']:.0f}")
        print(f"eval_tsv_m_peak_rss_mb: {peaks['tsv_m']:.0f}")
        print(f"tsv_m_over_zeroshot_peak_rss: {peaks['tsv_m'] / peaks['zeroshot']:.2f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
