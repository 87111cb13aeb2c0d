"""Benchmark: the same rank sweep in this process and on a two-node loopback Ray cluster, in one run.

The cluster is a head and one worker node (``ray.cluster_utils.Cluster``, 1 CPU each, bound to 127.0.0.1 only,
no dashboard, small object store); local evaluation runs with one torch thread, as each Ray unit does. The SVD
cache is built first, so both sides evaluate the same cached factors. Two sweeps of different rank fractions run
on each side: the first on Ray is *cold* (worker processes start, import torch and open the pool), the second
*warm* (the same workers). Prints ``name: value`` lines:

    points                          sweep points per run (tasks × fractions)
    local_s / ray_cold_s / ray_warm_s   wall times (absolute: disturbed by other load on the machine)
    ray_over_local_wall             warm Ray wall time / local wall time of the same points (no speed-up is
                                    expected on 2 cores; the ratio survives machine load)
    ray_overhead_per_point_s        (warm Ray wall − local wall / nodes used) / points: what distribution costs
                                    per point beyond ideal parallel compute                  (goal ≤ 0.5)
    ray_dispatch_overhead_per_point_s  (warm Ray wall − compute time measured inside the workers / nodes used)
                                    / points: dispatch, transfer and storing per point     (goal ≤ 0.5)
    ray_cold_overhead_per_point_s   as ray_overhead_per_point_s for the cold sweep (includes worker start-up)

    python bench/ray.py [--pool zoo-8] [--fractions-a 0.01,0.02,0.03,0.05,0.1] [--fractions-b 0.2,0.3,0.4,0.5,1.0]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# this file is named ray.py: drop its folder from the path so that `import ray` finds the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
# before Ray is imported: nodes bind 127.0.0.1 only
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spectral.cache import default_cache_dir  # noqa: E402
from spectral.eval import sweeps  # noqa: E402
from spectral.eval.distributed import open_pool_spec, run_sweep  # noqa: E402
from spectral.eval.evaluate import Evaluator  # noqa: E402
from spectral.eval.results import ResultsStore  # noqa: E402
from spectral.executor import LocalExecutor, RayExecutor, connect  # noqa: E402

OBJECT_STORE_BYTES = 100 * 2**20


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _sweep(pool, cache: Path, store: Path | Evaluator, fractions, executor, spec: str) -> float:
    ev = store if isinstance(store, Evaluator) else Evaluator(pool, store=store, cache_dir=cache, device="cpu")
    t0 = time.perf_counter()
    run_sweep(ev, lambda e: sweeps.rank_sweep(e, fractions), executor, pool_spec=spec)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="zoo-8", help="zoo-8 (default) or zoo-micro for a smoke run")
    parser.add_argument("--fractions-a", default="0.01,0.02,0.03,0.05,0.1")
    parser.add_argument("--fractions-b", default="0.2,0.3,0.4,0.5,1.0")
    args = parser.parse_args()
    frac_a, frac_b = _floats(args.fractions_a), _floats(args.fractions_b)

    import ray
    from ray.cluster_utils import Cluster

    torch.set_num_threads(1)
    cache = Path(default_cache_dir()).resolve()  # the zoo and its SVDs: shared by driver and both nodes
    pool = open_pool_spec(args.pool, cache_dir=cache)
    Evaluator(pool, store=False, cache_dir=cache, device="cpu").engine.build_cache()
    refs = Evaluator(pool, store=False, cache_dir=cache, device="cpu")
    refs.zeroshot(), refs.finetuned()  # warm the driver's data loading outside the timings
    points = len(pool.task_names) * len(frac_b)

    with tempfile.TemporaryDirectory(prefix="spectral-bench-ray-") as tmp:
        local_store, ray_store = Path(tmp) / "local.sqlite", Path(tmp) / "ray.sqlite"
        # one evaluator for both local sweeps, as a Ray worker keeps its own between units: the second sweep
        # finds the pool, its data and the SVD factors loaded, like the warm Ray sweep
        local_ev = Evaluator(pool, store=local_store, cache_dir=cache, device="cpu")
        _sweep(pool, cache, local_ev, frac_a, LocalExecutor(), args.pool)
        local_s = _sweep(pool, cache, local_ev, frac_b, LocalExecutor(), args.pool)

        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES})
        try:
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
            cluster.wait_for_nodes()
            connect(cluster.address)
            nodes = len([n for n in ray.nodes() if n["Alive"]])
            # the references (zero-shot, fine-tuned) come from the store on both sides
            executor = RayExecutor(cluster.address)
            ray_cold_s = _sweep(pool, cache, ray_store, frac_a, executor, args.pool)
            cold_points, cold_used = executor.units_run, len(executor.nodes_used)
            executor = RayExecutor(cluster.address)
            ray_warm_s = _sweep(pool, cache, ray_store, frac_b, executor, args.pool)
            warm_points, used = executor.units_run, len(executor.nodes_used)
            # compute time measured inside the workers (stored per result): what is left of the wall time is
            # dispatch, transfer and storing
            runs = ResultsStore(ray_store).to_dataframe(method="tsv_c").drop_duplicates("run")
            warm_compute_s = float(runs[runs["param_k_frac"].isin(frac_b)]["seconds"].sum())
        finally:
            ray.shutdown()
            cluster.shutdown()

    print(f"pool: {pool.name}")
    print(f"nodes: {nodes}")
    print(f"points: {points}")
    print(f"ray_points_cold: {cold_points}")
    print(f"ray_points_warm: {warm_points}")
    print(f"ray_nodes_used_cold: {cold_used}")
    print(f"ray_nodes_used_warm: {used}")
    print(f"local_s: {local_s:.2f}")
    print(f"ray_cold_s: {ray_cold_s:.2f}")
    print(f"ray_warm_s: {ray_warm_s:.2f}")
    print(f"ray_over_local_wall: {ray_warm_s / local_s:.2f}")
    # ideal: the local compute split over the nodes that actually ran points
    print(f"ray_overhead_per_point_s: {(ray_warm_s - local_s / max(used, 1)) / warm_points:.3f}")
    print(f"ray_warm_worker_compute_s: {warm_compute_s:.2f}")
    print(f"ray_dispatch_overhead_per_point_s: {(ray_warm_s - warm_compute_s / max(used, 1)) / warm_points:.3f}")
    print(f"ray_cold_overhead_per_point_s: {(ray_cold_s - local_s / max(cold_used, 1)) / cold_points:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
