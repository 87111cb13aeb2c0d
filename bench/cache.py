"""Cost of verifying SVD-cache entries on load, and of the housekeeping scans, measured in the same run.

Workload: the full-rank thin-SVD factors of one ViT-B/32 block (in_proj 2304×768, out_proj 768×768, c_fc 3072×768,
c_proj 768×3072) for ``--tasks`` tasks, written to a temporary cache. Prints ``name: value`` lines:

    verified_load_over_unverified_load   a cold-memory load of every entry with its XXH3-128 check / the same load
                                         without the check (safetensors safe_open only)
    verify_gb_per_s                      XXH3-128 throughput over the loaded factors
    status_scan_ms_per_1000_entries      `cache status`'s walk (usage_by_kind) per 1000 entries

Absolute times are disturbed by other processes on a shared machine; the ratio is measured in the same run.

    python bench/cache.py [--tasks 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spectral import housekeeping as hk  # noqa: E402
from spectral.cache import SVDCache  # noqa: E402
from spectral.io import tensor_checksum  # noqa: E402
from spectral.linalg import thin_svd  # noqa: E402

SHAPES = [(2304, 768), (768, 768), (3072, 768), (768, 3072)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        cache = SVDCache(tmp, memory_bytes=0)
        keys = []
        g = torch.Generator().manual_seed(0)
        for s, shape in enumerate(SHAPES):
            U, S, V = thin_svd(torch.randn(args.tasks, *shape, generator=g))
            for t in range(args.tasks):
                keys.append(f"{s:02d}{t:02d}" * 16)
                cache.put(keys[-1], (U[t], S[t], V[t]))
        nbytes = sum(cache.path(k).stat().st_size for k in keys)

        def unverified() -> None:
            for k in keys:
                with safe_open(str(cache.path(k)), framework="pt") as handle:
                    _ = handle.metadata()
                    for name in ("U", "S", "V"):
                        handle.get_tensor(name).sum()  # touch the bytes, as any use of the factors does

        def verified() -> None:
            fresh = SVDCache(tmp, memory_bytes=0)
            for k in keys:
                factors = fresh.get(k)
                assert factors is not None
                for f in factors:
                    f.sum()

        plain, checked = [], []
        for _ in range(args.repeats):  # interleaved, so load changes on the machine hit both alike
            t0 = time.perf_counter(); unverified(); plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); verified(); checked.append(time.perf_counter() - t0)
        tensors = [dict(zip("USV", SVDCache(tmp).get(k))) for k in keys]
        t0 = time.perf_counter()
        for t in tensors:
            tensor_checksum(t)
        hash_s = time.perf_counter() - t0

        for i in range(2000):  # small stand-ins: a real pool's cache has thousands of entries (ViT-L/14 × 20: ~10k)
            p = Path(tmp) / "svd" / f"{i % 256:02x}" / f"{i:064x}.safetensors"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"0")
        scanned = len(hk.list_entries(tmp))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            hk.usage_by_kind(tmp)
        scan_s = (time.perf_counter() - t0) / args.repeats

    print(f"entries: {len(keys)} ({nbytes / 1e9:.2f} GB)")
    print(f"verified_load_over_unverified_load: {statistics.median(checked) / statistics.median(plain):.3f}")
    print(f"verify_gb_per_s: {nbytes / 1e9 / hash_s:.2f}")
    print(f"status_scan_ms_per_1000_entries: {scan_s * 1e3 * 1000 / scanned:.1f}")


if __name__ == "__main__":
    main()
