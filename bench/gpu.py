"""The GPU path, measured side by side with the CPU path in the same run (issue 10, item 6).

Prints ``name: value`` lines (``#`` lines are comments), by part (``--only``):

- ``svd``: the thin-SVD routes per tower matrix shape (cuSOLVER's default driver, gesvd, and the float64-Gram
  route :func:`spectral.linalg.gram_thin_svd` that :func:`spectral.linalg.thin_svd` uses on CUDA), ms per matrix
  and their errors against a float64 SVD;
- ``eigh``: the latency of a 768×768 ``eigh`` (batched, on 4 streams, on the CPU), which bounds the slider moves on a
  GPU;
- ``cache``: SVD cache build of ViT-B/32 × 8 and ViT-L/14 × 20 tasks (random full-rank task matrices of the real
  shapes) on the device (goal for L/14 × 20: ≤ 60 s on one H100/H200), with its phases (``Engine.last_build_stats``)
  and the rate of plain writes into the same folder (``disk_write_gb_per_s``: the cache folder is ``$TMPDIR``), next
  to the CPU build of ``--cpu-blocks`` blocks of the same model (per block, so the CPU figure is an extrapolation,
  stated as such in the line's name);
- ``sliders``: slider-move latency on ViT-B/32 × 8 (TSV-M k_frac, Iso-CTS common_frac steps from the default 0.8 and
  its far move 0.8 → 0.2, alpha) of the engine on the
  device, next to the engine on the CPU and to the reference-style recomputation (every SVD redone) on the device,
  and their ratio (``slider_*_reference_over_engine_*``);
- ``eval``: evaluation throughput (images/s) on generated 224-px JPEG folders: cold (decoding in DataLoader workers and
  writing the image cache) and warm (the memory-mapped uint8 cache), on the device and on the CPU.

On a machine without CUDA the "device" is the CPU too: the script still runs (that is what its smoke test checks);
``--quick`` shrinks everything (one block, two tasks, a few images) to seconds.

    python bench/gpu.py                  # full size: run it where a GPU is lent
    python bench/gpu.py --quick          # smoke run on any machine
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from spectral.cache import SVDCache  # noqa: E402
from spectral.engine import Engine  # noqa: E402
from spectral.taskset import TaskSet  # noqa: E402

#: (width, blocks, mlp width, tokens, output dim) of the image towers
TOWERS = {"ViT-B-32": (768, 12, 3072, 50, 512), "ViT-L-14": (1024, 24, 4096, 257, 768)}


def tower_shapes(arch: str, blocks: int | None = None, shrink: int = 1) -> dict[str, tuple[int, int]]:
    """The image tower's matrix shapes; ``shrink`` divides every dimension (smoke runs only)."""
    width, depth, mlp, tokens, out = (d if i == 1 else max(2, d // shrink) for i, d in enumerate(TOWERS[arch]))
    shapes = {"visual.positional_embedding": (tokens, width), "visual.proj": (width, out)}
    for b in range(depth if blocks is None else blocks):
        p = f"visual.transformer.resblocks.{b}."
        shapes[p + "attn.in_proj_weight"] = (3 * width, width)
        shapes[p + "attn.out_proj.weight"] = (width, width)
        shapes[p + "mlp.c_fc.weight"] = (mlp, width)
        shapes[p + "mlp.c_proj.weight"] = (width, mlp)
    return shapes


def random_taskset(arch: str, tasks: int, blocks: int | None = None, seed: int = 0, shrink: int = 1,
                   device: torch.device | str = "cpu") -> TaskSet:
    """Base weights and full-rank random task vectors of the real shapes (as fine-tuning deltas are), in CPU memory.

    The numbers are drawn on ``device`` (a GPU draws ViT-L/14 × 20's 6.4 billion in milliseconds, the CPU in
    tens of seconds), then moved to the CPU, where a user's checkpoints live.
    """
    g = torch.Generator(device=device).manual_seed(seed)
    shapes = tower_shapes(arch, blocks, shrink)

    def draw(s: tuple[int, int], scale: float, offset: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.randn(*s, generator=g, device=device).mul_(scale)
        return (x if offset is None else x.add_(offset.to(device))).cpu()

    base = {k: draw(s, 0.02) for k, s in shapes.items()}
    finetuned = {f"task{t}": {k: draw(s, 1e-3, base[k]) for k, s in shapes.items()} for t in range(tasks)}
    return TaskSet(base, finetuned, name=f"{arch}x{tasks}", validate=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 1) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def cache_build(arch: str, tasks: int, blocks: int | None, device: torch.device, tmp: Path,
                shrink: int = 1) -> tuple[float, dict[str, float], int]:
    """Seconds of a cold cache build, the seconds of its phases (``Engine.last_build_stats``) and the bytes it
    wrote."""
    ts = random_taskset(arch, tasks, blocks, shrink=shrink, device=device)
    folder = Path(tempfile.mkdtemp(dir=tmp))
    engine = Engine(ts, cache=SVDCache(folder, memory_bytes=0), device=device)
    seconds = timed(engine.build_cache, device)
    written = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    return seconds, engine.last_build_stats, written


def disk_write_rate(folder: Path, total_bytes: int, file_bytes: int = 32 << 20) -> float:
    """GB/s of plain ``write`` calls of ``file_bytes`` files into ``folder`` (no fsync, as the cache writes): the
    rate the cache build cannot beat once its factors outgrow what the page cache absorbs."""
    payload = torch.randint(0, 256, (file_bytes,), dtype=torch.uint8).numpy().tobytes()
    target = Path(tempfile.mkdtemp(dir=folder))
    start = time.perf_counter()
    for i in range(max(1, total_bytes // file_bytes)):
        with open(target / f"{i}.bin", "wb") as f:
            f.write(payload)
    seconds = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return max(1, total_bytes // file_bytes) * file_bytes / seconds / 1e9


def bench_svd_routes(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    """The thin-SVD routes of :func:`spectral.linalg.thin_svd` on the device, per matrix shape: cuSOLVER through
    ``torch.linalg.svd`` (default driver, and gesvd) against the float64-Gram route, with their errors against a
    float64 SVD (largest singular-value error over σ₁, and ‖A − U S Vᵀ‖_F / ‖A‖_F)."""
    from spectral import linalg

    def gesvd(A: torch.Tensor) -> linalg.SVD:
        U, S, Vh = linalg.exact_svd(A)
        return U, S, Vh.mT

    def default(A: torch.Tensor) -> linalg.SVD:
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        return U, S, Vh.mT

    routes = {"torch": default, "gesvd": gesvd, "gram": linalg.gram_thin_svd}
    g = torch.Generator().manual_seed(0)
    shrink = args.shrink
    for m, n in ((4096, 1024), (3072, 1024), (1024, 1024), (3072, 768), (2304, 768), (768, 768)):
        m, n = max(2, m // shrink), max(2, n // shrink)
        A = (torch.randn(args.svd_batch, m, n, generator=g) * 1e-3).to(device)
        ref = torch.linalg.svd(A[:1].double().cpu(), full_matrices=False)
        for name, route in routes.items():
            route(A[:1])  # warm-up: handles, workspaces
            seconds = timed(lambda: route(A), device)
            U, S, V = (f[:1].double().cpu() for f in route(A[:1]))
            s_err = float((S - ref.S).abs().max() / ref.S[..., 0].max())
            rebuilt = (U * S.unsqueeze(-2)) @ V.mT
            r_err = float((rebuilt - A[:1].double().cpu()).norm() / A[:1].double().cpu().norm())
            tag = f"svd_{m}x{n}_{name}_{device.type}"
            print(f"{tag}_ms_per_matrix: {1000 * seconds / args.svd_batch:.2f}", flush=True)
            print(f"# {tag}: singular-value error {s_err:.1e} of σ1, reconstruction error {r_err:.1e}", flush=True)
        del A


def bench_eigh(args: argparse.Namespace, device: torch.device) -> None:
    """float64 ``eigh`` of 16 matrices of 768² (the size of the Gram routes on ViT-B/32): one batched call on the
    device, the same split over 4 threads with a CUDA stream each, and on the CPU. The slider moves make hundreds
    of such calls, so their latency, not their arithmetic, decides the move's time on a GPU."""
    import threading

    n = max(2, 768 // args.shrink)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, 2 * n, n, generator=g, dtype=torch.float64)
    grams = (X.mT @ X).to(device)
    torch.linalg.eigh(grams[:2])
    t_batched = timed(lambda: torch.linalg.eigh(grams), device, repeat=3)
    print(f"eigh_{n}_fp64_{device.type}_ms_per_matrix: {1000 * t_batched / 16:.2f}", flush=True)
    t32 = timed(lambda: torch.linalg.eigh(grams.float()), device, repeat=3)
    print(f"eigh_{n}_fp32_{device.type}_ms_per_matrix: {1000 * t32 / 16:.2f}", flush=True)
    if device.type == "cuda":
        def split() -> None:
            def work(part: torch.Tensor) -> None:
                stream = torch.cuda.Stream(device)
                with torch.cuda.stream(stream):
                    torch.linalg.eigh(part)
                stream.synchronize()
            threads = [threading.Thread(target=work, args=(grams[i::4],)) for i in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        split()
        t_split = timed(split, device, repeat=3)
        print(f"eigh_{n}_fp64_{device.type}_4streams_ms_per_matrix: {1000 * t_split / 16:.2f}", flush=True)
        try:  # MAGMA's eigh (hybrid CPU/GPU), where torch was built with it
            torch.backends.cuda.preferred_linalg_library("magma")
            torch.linalg.eigh(grams[:2])
            t_magma = timed(lambda: torch.linalg.eigh(grams), device, repeat=3)
            print(f"eigh_{n}_fp64_{device.type}_magma_ms_per_matrix: {1000 * t_magma / 16:.2f}", flush=True)
        except RuntimeError as err:
            print(f"# MAGMA eigh unavailable: {err}", flush=True)
        finally:
            torch.backends.cuda.preferred_linalg_library("default")
        cpu = grams.cpu()
        t_cpu = timed(lambda: torch.linalg.eigh(cpu), torch.device("cpu"), repeat=3)
        print(f"eigh_{n}_fp64_cpu_ms_per_matrix: {1000 * t_cpu / 16:.2f}", flush=True)


def bench_cache(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    probe = max(1 << 20, int(args.write_probe_gb * 1e9))
    print(f"disk_write_gb_per_s: {disk_write_rate(tmp, probe, min(32 << 20, probe)):.2f}", flush=True)
    print(f"# plain writes of {probe / 1e9:.2f} GB into {tmp} (set TMPDIR to measure another disk)", flush=True)
    for arch, tasks in (("ViT-B-32", args.b32_tasks), ("ViT-L-14", args.l14_tasks)):
        if arch not in args.cache_archs.split(","):
            continue
        tag = f"{arch.replace('-', '').lower()}x{tasks}"
        blocks = args.blocks
        if arch == "ViT-L-14" and args.l14_blocks:
            blocks = args.l14_blocks
            tag += f"_{blocks}of{TOWERS[arch][1]}blocks"
        t_dev, phases, written = cache_build(arch, tasks, blocks, device, tmp, args.shrink)
        print(f"{tag}_cache_build_{device.type}_s: {t_dev:.2f}", flush=True)
        print(f"# {tag}: wrote {written / 1e9:.1f} GB to {tmp}; " + ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in phases.items()), flush=True)
        print(f"{tag}_cache_write_gb_per_s: {written / 1e9 / t_dev:.2f}", flush=True)
        depth = TOWERS[arch][1] if blocks is None else blocks
        cpu_blocks = min(args.cpu_blocks, depth)
        if cpu_blocks <= 0:
            continue
        t_cpu = cache_build(arch, tasks, cpu_blocks, torch.device("cpu"), tmp, args.shrink)[0]
        estimate = t_cpu / cpu_blocks * depth
        print(f"# CPU: {cpu_blocks} of {depth} blocks in {t_cpu:.1f} s", flush=True)
        print(f"{tag}_cache_build_cpu_extrapolated_s: {estimate:.1f}", flush=True)
        print(f"{tag}_cache_build_cpu_over_{device.type}: {estimate / t_dev:.2f}", flush=True)


def bench_sliders(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    import engine as engine_bench  # bench/engine.py: the reference-style recomputations

    ts = random_taskset("ViT-B-32", args.b32_tasks, args.blocks, shrink=args.shrink, device=device)
    T = ts.num_tasks
    engine_ms: dict[str, float] = {}
    for where in (device, torch.device("cpu")) if device.type != "cpu" and not args.device_only else (device,):
        folder = Path(tempfile.mkdtemp(dir=tmp))
        eng = Engine(ts, cache=SVDCache(folder, memory_bytes=8 << 30), device=where)
        eng.build_cache()
        eng.merge("tsv_m", k_frac=1.0 / T)
        eng.merge("iso_cts", common_frac=0.8)
        ks = iter([0.5 / T, 0.75 / T, 0.6 / T])
        cfs = iter([0.5, 0.6, 0.7])
        t_tsv = timed(lambda: eng.merge("tsv_m", k_frac=next(ks)), where, repeat=3)
        t_iso = timed(lambda: eng.merge("iso_cts", common_frac=next(cfs)), where, repeat=3)
        merged = eng.merge("tsv_m", k_frac=0.5 / T, alpha=1.0)
        alphas = iter([0.5 + 0.05 * i for i in range(100)])
        t_alpha = timed(lambda: eng.merge("tsv_m", k_frac=0.5 / T, alpha=next(alphas), out=merged), where, repeat=9)
        print(f"slider_tsv_m_k_frac_{where.type}_ms: {1000 * t_tsv:.1f}", flush=True)
        print(f"slider_iso_cts_common_frac_{where.type}_ms: {1000 * t_iso:.1f}", flush=True)
        print(f"slider_alpha_{where.type}_ms: {1000 * t_alpha:.2f}", flush=True)
        # the far end of the slider, as bench/engine.py's goal line (0.8 → 0.2: s = 77 directions per task)
        t_far = timed(lambda: eng.merge("iso_cts", common_frac=0.2), where)
        print(f"slider_iso_cts_far_{where.type}_ms: {1000 * t_far:.1f}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        if where == device:
            engine_ms = {"tsv_m_k_frac": 1000 * t_tsv, "iso_cts_common_frac": 1000 * t_iso, "iso_cts_far": 1000 * t_far}
    on_device = TaskSet({k: v.to(device) for k, v in ts.base.items()},
                        {t: {k: v.to(device) for k, v in sd.items()} for t, sd in ts.finetuned.items()},
                        name="ref", validate=False)
    t_ref_tsv = timed(lambda: engine_bench.reference_tsv_m(on_device, 0.5 / T), device)
    t_ref_iso = timed(lambda: engine_bench.reference_iso_cts(on_device, 0.5), device)
    t_ref_far = timed(lambda: engine_bench.reference_iso_cts(on_device, 0.2), device)
    for move, t_ref in (("tsv_m_k_frac", t_ref_tsv), ("iso_cts_common_frac", t_ref_iso), ("iso_cts_far", t_ref_far)):
        print(f"reference_{move}_{device.type}_ms: {1000 * t_ref:.1f}", flush=True)
        print(f"slider_{move}_reference_over_engine_{device.type}: {1000 * t_ref / engine_ms[move]:.1f}", flush=True)


def bench_eval(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    import scale  # bench/scale.py: generated JPEG folders and a random-weight pool

    from spectral.eval.evaluate import task_accuracies

    data, cache = tmp / "data", tmp / "cache"
    sizes = scale.write_folders(data, args.eval_scale, args.eval_tasks, size=224)
    pool = scale.make_pool(data, args.eval_tasks, "ViT-B-32")
    sd = pool.base_state_dict()
    n = sum(sizes.values())
    print(f"# evaluation: {n} generated 224-px JPEG test images over {len(sizes)} tasks", flush=True)
    t_cold = timed(lambda: task_accuracies(pool, sd, device=device, cache_dir=cache), device)
    t_warm = timed(lambda: task_accuracies(pool, sd, device=device, cache_dir=cache), device)
    print(f"eval_cold_{device.type}_images_per_s: {n / t_cold:.1f}", flush=True)
    print(f"eval_warm_{device.type}_images_per_s: {n / t_warm:.1f}", flush=True)
    if device.type != "cpu":
        per_task = max(1, args.cpu_eval_images // len(sizes))
        t_cpu = timed(lambda: task_accuracies(pool, sd, device="cpu", cache_dir=cache, subsample=per_task),
                      torch.device("cpu"))
        m = sum(min(per_task, s) for s in sizes.values())
        print(f"eval_warm_cpu_images_per_s: {m / t_cpu:.1f}", flush=True)
        print(f"eval_warm_{device.type}_over_cpu: {(n / t_warm) / (m / t_cpu):.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--quick", action="store_true",
                        help="one block of 1/8-size matrices, two tasks, a few images: seconds (smoke test)")
    parser.add_argument("--blocks", type=int, default=None, help="transformer blocks per tower (default: all)")
    parser.add_argument("--l14-blocks", type=int, default=None,
                        help="blocks of the ViT-L/14 cache build only (default: --blocks; the line says it is partial)")
    parser.add_argument("--cache-archs", default="ViT-B-32,ViT-L-14", help="towers of the cache-build part")
    parser.add_argument("--device-only", action="store_true", help="slider moves on the device only (no CPU row)")
    parser.add_argument("--svd-batch", type=int, default=8, help="matrices per timed batch of the SVD routes")
    parser.add_argument("--b32-tasks", type=int, default=8)
    parser.add_argument("--l14-tasks", type=int, default=20)
    parser.add_argument("--cpu-blocks", type=int, default=1, help="blocks of the CPU cache build (extrapolated)")
    parser.add_argument("--write-probe-gb", type=float, default=2.0, help="size of the plain-write probe (cache part)")
    parser.add_argument("--eval-scale", type=float, default=0.05, help="fraction of the real 8 test-set sizes")
    parser.add_argument("--eval-tasks", type=int, default=8)
    parser.add_argument("--cpu-eval-images", type=int, default=256, help="images of the CPU evaluation figure")
    parser.add_argument("--only", default="svd,cache,sliders,eval", help="comma-separated parts to run")
    args = parser.parse_args(argv)
    args.shrink = 8 if args.quick else 1
    if args.quick:
        args.blocks, args.b32_tasks, args.l14_tasks = 1, 2, 2
        args.eval_scale, args.eval_tasks, args.cpu_eval_images, args.svd_batch = 0.0005, 2, 8, 2
        args.write_probe_gb = 0.004
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU only)"
    print(f"# device: {device} · card: {card} · torch {torch.__version__} · {torch.get_num_threads()} CPU threads",
          flush=True)
    parts = {p.strip() for p in args.only.split(",")}
    tmp = Path(tempfile.mkdtemp(prefix="spectral-gpu-"))
    try:
        if "svd" in parts:
            bench_svd_routes(args, device, tmp)
        if "eigh" in parts:
            bench_eigh(args, device)
        if "cache" in parts:
            bench_cache(args, device, tmp)
        if "sliders" in parts:
            bench_sliders(args, device, tmp)
        if "eval" in parts:
            bench_eval(args, device, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
