"""Benchmark of the merge engine against reference-style recomputation, measured in the same run.

Workload (issue 2): random low-rank task matrices with the ViT-B/32 image-tower shapes — 12 blocks of
in_proj 2304×768, out_proj 768×768, c_fc 3072×768, c_proj 768×3072, plus positional_embedding 50×768 and proj
768×512 — for 8 tasks. Prints one ``name: value`` line per figure:

    cache_build_over_bare_svd      cache build / bare batched torch.linalg.svd of the same matrices  (goal ≤ 1.15)
    recompute_over_warm_load       recomputing every SVD / a fresh engine loading them from cache/   (goal ≥ 20)
    tsv_m_recompute_over_cached    TSV-M at a new k_frac, reference-style recompute / engine          (goal ≥ 10)
    iso_cts_recompute_over_cached  Iso-CTS at a new common_frac (0.8 → 0.2), same (goal ≥ 10; full rank: ≥ 5)
    iso_cts_dense_lapack_ceiling   the reference's 0.8 → 0.2 time / the time of the dense eigh and SVD calls inside the
                                   engine's move: the highest iso_cts_recompute_over_cached the exact routes could reach
                                   if everything but those calls were free
    iso_cts_step_recompute_over_cached  Iso-CTS one slider step from the default (0.8 → 0.7), same
    alpha_change_ms                latency of an alpha-only change of a whole-model merge            (goal ≤ 50)
    alpha_bare_axpy_ms             the same run's floor: one torch.add(θ₀, Δ, alpha, out=) per tensor, nothing else
    alpha_change_over_bare_axpy    alpha_change_ms / alpha_bare_axpy_ms: what the engine adds to the memory traffic

``--model gpt2`` uses GPT-2's shapes instead (the AdaRank paper's language setting: 12 blocks of c_attn
2304×768, attn.c_proj 768×768, c_fc 3072×768, mlp.c_proj 768×3072 in the canonical out × in orientation, plus
wte 50257×768 and wpe 1024×768, every 2-D weight a matrix as FusionBench does) for 7 tasks.
``--full-rank`` adds small isotropic noise so every task matrix has full numerical rank (as real fine-tuning
deltas do); ``--blocks``/``--tasks`` shrink the workload for a smoke run. ``--no-gram`` turns off the exact
Gram routes of :mod:`spectral.linalg` (polar factor and top-s residual triplets by float64 eigh of the small Gram)
so that the engine runs the plain-SVD path it used before them, for comparison.

    python bench/engine.py [--blocks 12] [--tasks 8] [--rank 32] [--full-rank] [--no-gram] [--model gpt2]
                           [--skip-reference]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spectral import linalg  # noqa: E402
from spectral.cache import SVDCache  # noqa: E402
from spectral.engine import Engine  # noqa: E402
from spectral.methods.iso import iso_cts_sizes  # noqa: E402
from spectral.taskset import TaskSet  # noqa: E402


def vit_b32_shapes(blocks: int) -> dict[str, tuple[int, int]]:
    shapes = {"visual.positional_embedding": (50, 768), "visual.proj": (768, 512)}
    for b in range(blocks):
        p = f"visual.transformer.resblocks.{b}."
        shapes[p + "attn.in_proj_weight"] = (2304, 768)
        shapes[p + "attn.out_proj.weight"] = (768, 768)
        shapes[p + "mlp.c_fc.weight"] = (3072, 768)
        shapes[p + "mlp.c_proj.weight"] = (768, 3072)
    return shapes


def gpt2_shapes(blocks: int) -> dict[str, tuple[int, int]]:
    """GPT-2 (124M) body matrices, canonical out × in (its Conv1D weights are stored in × out on disk)."""
    shapes = {"wte.weight": (50257, 768), "wpe.weight": (1024, 768)}
    for b in range(blocks):
        shapes[f"h.{b}.attn.c_attn.weight"] = (2304, 768)
        shapes[f"h.{b}.attn.c_proj.weight"] = (768, 768)
        shapes[f"h.{b}.mlp.c_fc.weight"] = (3072, 768)
        shapes[f"h.{b}.mlp.c_proj.weight"] = (768, 3072)
    return shapes


MODEL_SHAPES = {"vit-b-32": vit_b32_shapes, "gpt2": gpt2_shapes}


def make_taskset(blocks: int, tasks: int, rank: int, full_rank: bool, seed: int = 0,
                 model: str = "vit-b-32") -> TaskSet:
    g = torch.Generator().manual_seed(seed)
    shapes = MODEL_SHAPES[model](blocks)
    base = {k: torch.randn(*s, generator=g) * 0.02 for k, s in shapes.items()}
    finetuned = {}
    for t in range(tasks):
        sd = {}
        for k, (m, n) in shapes.items():
            rho = min(rank, m, n)
            delta = (torch.randn(m, rho, generator=g) @ torch.randn(rho, n, generator=g)) * (1e-3 / rho**0.5)
            if full_rank:
                delta += torch.randn(m, n, generator=g) * 1e-5
            sd[k] = base[k] + delta
        finetuned[f"task{t}"] = sd
    return TaskSet(base, finetuned, name="bench")


class DenseLapackTimer:
    """Wall-clock seconds during which at least one ``torch.linalg.eigh`` or ``torch.linalg.svd`` call runs while
    active (spectral.linalg looks them up at call time, so wrapping the module attributes sees every call the engine
    makes). Calls that overlap on the engine's worker threads (:func:`spectral.linalg.map_tasks`) count once."""

    def __enter__(self) -> "DenseLapackTimer":
        self.calls, self._saved, self._spans, self._lock = 0, {}, [], threading.Lock()
        for name in ("eigh", "svd"):
            original = getattr(torch.linalg, name)
            self._saved[name] = original

            def timed_call(*args, _original=original, **kwargs):  # noqa: ANN002, ANN003, ANN202
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    with self._lock:
                        self._spans.append((start, time.perf_counter()))
                        self.calls += 1

            setattr(torch.linalg, name, timed_call)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(torch.linalg, name, original)

    @property
    def seconds(self) -> float:
        total, covered_until = 0.0, float("-inf")
        for start, end in sorted(self._spans):
            total += max(0.0, end - max(start, covered_until))
            covered_until = max(covered_until, end)
        return total


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_svd(ts: TaskSet) -> None:
    """What a user without the engine does: one batched torch.linalg.svd per layer over the T task matrices."""
    for key in ts.matrix_keys:
        torch.linalg.svd(ts.task_matrices(key), full_matrices=False)


POLAR_FALLBACKS = 0


def polar(x: torch.Tensor) -> torch.Tensor:
    """U Vᵀ of x in x's dtype, as the reference code computes it; where float32 LAPACK fails to converge (it does
    on some full-rank concatenations) the float64 retry is counted and reported, since it makes the reference slower."""
    global POLAR_FALLBACKS
    try:
        P, _, Qh = torch.linalg.svd(x, full_matrices=False)
    except torch.linalg.LinAlgError:
        POLAR_FALLBACKS += 1
        P, _, Qh = torch.linalg.svd(x.double(), full_matrices=False)
        return (P @ Qh).to(x.dtype)
    return P @ Qh


def reference_tsv_m(ts: TaskSet, k_frac: float, alpha: float = 1.0) -> None:
    """TSV-M as the reference code runs it: every task's SVD recomputed, then Procrustes by SVD."""
    for key in ts.matrix_keys:
        tm = ts.task_matrices(key)
        U, S, Vh = torch.linalg.svd(tm, full_matrices=False)
        k = max(1, int(k_frac * S.shape[-1]))
        U_cat = U[:, :, :k].permute(1, 0, 2).reshape(U.shape[1], -1)
        V_cat = Vh[:, :k, :].permute(2, 0, 1).reshape(Vh.shape[2], -1)
        _ = alpha * (polar(U_cat) * S[:, :k].reshape(-1)) @ polar(V_cat).T


def reference_iso_cts(ts: TaskSet, common_frac: float, alpha: float = 1.5) -> None:
    """Iso-CTS as the reference code runs it: SVD of the sum, of every residual, and both polar factors."""
    for key in ts.matrix_keys:
        tm = ts.task_matrices(key)
        U, S, Vh = torch.linalg.svd(tm.sum(0), full_matrices=False)
        r = S.shape[0]
        k, s = iso_cts_sizes(r, tm.shape[0], common_frac)
        Us, Ss, Vs = [U[:, :k]], [S[:k]], [Vh[:k].T]
        for d in tm:
            resid = d - U[:, :k] @ (U[:, :k].T @ d)
            Ut, St, Vht = torch.linalg.svd(resid, full_matrices=False)
            Us.append(Ut[:, :s]); Ss.append(St[:s]); Vs.append(Vht[:s].T)
        sigma_bar = torch.cat(Ss).sum() / r
        _ = alpha * sigma_bar * polar(torch.cat(Us, 1)) @ polar(torch.cat(Vs, 1)).T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=None, help="default: 8 (vit-b-32), 7 (gpt2)")
    parser.add_argument("--model", choices=sorted(MODEL_SHAPES), default="vit-b-32",
                        help="shapes of the random task matrices")
    parser.add_argument("--rank", type=int, default=32, help="rank of each random task matrix")
    parser.add_argument("--full-rank", action="store_true", help="add noise: every task matrix full rank")
    parser.add_argument("--cache-dir", default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--no-gram", action="store_true", help="engine without the Gram routes (plain SVDs)")
    parser.add_argument("--skip-reference", action="store_true",
                        help="only the cache build, warm load and alpha change (no reference-style recomputation)")
    args = parser.parse_args(argv)
    use_gram_before, linalg.USE_GRAM = linalg.USE_GRAM, not args.no_gram
    try:
        return run(args)
    finally:
        linalg.USE_GRAM = use_gram_before


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(0)
    tasks = args.tasks or (7 if args.model == "gpt2" else 8)
    ts = make_taskset(args.blocks, tasks, args.rank, args.full_rank, model=args.model)
    n_mat = len(ts.matrix_keys) * ts.num_tasks
    print(f"# workload: {n_mat} task matrices ({len(ts.matrix_keys)} layers × {ts.num_tasks} tasks), "
          f"rank {'full' if args.full_rank else args.rank}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, Gram routes {'off' if args.no_gram else 'on'}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.cache_dir) as tmp:
        memory = 12 << 30

        t_bare = timed(lambda: bare_svd(ts))
        engine = Engine(ts, cache=SVDCache(tmp, memory_bytes=memory), device="cpu")
        t_build = timed(engine.build_cache)
        print(f"# bare batched SVD {t_bare:.2f} s, cache build {t_build:.2f} s", flush=True)
        print(f"cache_build_over_bare_svd: {t_build / t_bare:.3f}", flush=True)

        def warm_load() -> None:
            fresh = Engine(TaskSet(ts.base, ts.finetuned, validate=False), cache=SVDCache(tmp, memory_bytes=memory),
                           device="cpu")
            for key in fresh.taskset.matrix_keys:  # look every factor up by content and read all its bytes
                for t in range(fresh.taskset.num_tasks):
                    factors = fresh.cache.get(fresh.taskset.matrix_hash(t, key))
                    assert factors is not None
                    _ = [float(f.sum()) for f in factors]

        t_warm = timed(warm_load)
        print(f"# warm load (hash every task matrix, read every factor from cache/) {t_warm:.2f} s", flush=True)
        print(f"recompute_over_warm_load: {t_bare / t_warm:.1f}", flush=True)

        T = ts.num_tasks
        engine.merge("tsv_m", k_frac=1.0 / T)  # warm the engine on the default, then move the slider
        new_k = 0.5 / T
        if args.skip_reference:
            alpha_change(engine, new_k)
            return 0
        t_ref = timed(lambda: reference_tsv_m(ts, new_k))
        t_eng = timed(lambda: engine.merge("tsv_m", k_frac=new_k))
        print(f"# TSV-M k_frac={new_k:.4f}: reference {t_ref:.2f} s, engine {t_eng:.3f} s", flush=True)
        print(f"tsv_m_recompute_over_cached: {t_ref / t_eng:.1f}", flush=True)

        engine.merge("iso_cts", common_frac=0.8)
        new_cf = 0.2
        t_ref = timed(lambda: reference_iso_cts(ts, new_cf))
        with DenseLapackTimer() as lapack:
            t_eng = timed(lambda: engine.merge("iso_cts", common_frac=new_cf))
        print(f"# Iso-CTS common_frac={new_cf}: reference {t_ref:.2f} s, engine {t_eng:.3f} s, of which "
              f"{lapack.seconds:.2f} s in {lapack.calls} dense eigh/SVD calls", flush=True)
        if POLAR_FALLBACKS:
            print(f"# the reference's float32 polar SVD did not converge {POLAR_FALLBACKS}× and was redone in "
                  "float64 (the reference times above include it)", flush=True)
        print(f"iso_cts_recompute_over_cached: {t_ref / t_eng:.1f}", flush=True)
        print(f"iso_cts_dense_lapack_ceiling: {t_ref / max(lapack.seconds, 1e-9):.1f}", flush=True)
        # 0.8 → 0.2 above is the far end of the slider (s = (r − k)/T is large); one step from the default is the
        # common move, with a small s: measured too, both against the reference at the same setting
        engine.merge("iso_cts", common_frac=0.8)
        step_cf = 0.7
        t_ref = timed(lambda: reference_iso_cts(ts, step_cf))
        t_eng = timed(lambda: engine.merge("iso_cts", common_frac=step_cf))
        print(f"# Iso-CTS common_frac={step_cf}: reference {t_ref:.2f} s, engine {t_eng:.3f} s", flush=True)
        print(f"iso_cts_step_recompute_over_cached: {t_ref / t_eng:.1f}", flush=True)

        alpha_change(engine, new_k)
    return 0


def alpha_change(engine: Engine, k_frac: float) -> None:
    merged = engine.merge("tsv_m", k_frac=k_frac, alpha=1.0)
    alphas = iter([0.5 + 0.05 * i for i in range(1000)])
    t_alpha = timed(lambda: engine.merge("tsv_m", k_frac=k_frac, alpha=next(alphas), out=merged), repeat=9)
    print(f"alpha_change_ms: {t_alpha * 1000:.2f}", flush=True)
    # the floor of any α move that writes a float32 model: one fused θ₀ + α·Δ per tensor (read θ₀, read Δ, write)
    base = engine.taskset.base
    slopes = {k: torch.randn(v.shape) for k, v in base.items()}
    outs = {k: torch.empty(v.shape) for k, v in base.items()}

    def bare_axpy() -> None:
        alpha = next(alphas)
        for k, v in base.items():
            torch.add(v, slopes[k], alpha=alpha, out=outs[k])

    t_bare = timed(bare_axpy, repeat=9)
    print(f"alpha_bare_axpy_ms: {t_bare * 1000:.2f}", flush=True)
    print(f"alpha_change_over_bare_axpy: {t_alpha / t_bare:.2f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
