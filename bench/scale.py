"""Evaluation at the papers' scale: peak RSS and images/s of streamed evaluation (cold: decoding JPEGs and writing
the image cache; warm: reading the cache) against the former way (every split held as float32 and concatenated),
each mode in its own process, on a random-weight ViT-B/32 pool with generated JPEG test folders.

The eight test sets of the ViT-B/32 benchmark (SUN397 19,850, SVHN 26,032, GTSRB 12,630, MNIST 10,000, Cars
8,041, RESISC45 6,300, EuroSAT 2,700, DTD 1,880: 87,433 images) are scaled by ``--scales`` (default two sizes,
so the growth of peak RSS per test image is measured as a slope between them). Images are 256 px on the short
side (smooth random content, JPEG quality 90), so every mode resizes and centre-crops to 224 as CLIP does.

Each mode evaluates the zero-shot model on every task (one model; ``python -m spectral eval`` does this once per
model it reports) in a fresh subprocess; the parent reads that process's own peak RSS (``ru_maxrss``) and its
DataLoader workers' (their summed PSS, sampled from /proc every 0.2 s). Lines ``name: value``; a line starting with ``#``
is a comment. Absolute times depend on the machine's load; the ratios compare modes of the same run.

    python bench/scale.py                       # scales 0.005 and 0.05 of the real sizes (~440 and ~4,370 images)
    python bench/scale.py --scales 0.002 --tasks 2 --quick     # seconds: the smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (task, test-set size, classes) of the ViT-B/32 8-task benchmark
SUITE = [("SUN397", 19850, 397), ("SVHN", 26032, 10), ("GTSRB", 12630, 43), ("MNIST", 10000, 10),
         ("Cars", 8041, 196), ("RESISC45", 6300, 45), ("EuroSAT", 2700, 10), ("DTD", 1880, 47)]
MAX_CLASSES = 10  # class folders per generated task (labels only matter for accuracy, not for memory or speed)


def write_folders(root: Path, scale: float, tasks: int, size: int = 256, seed: int = 0) -> dict[str, int]:
    """``root/<task>/{train,test}/c<k>/*.jpg`` for the first ``tasks`` of :data:`SUITE`; returns test sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = {}
    for task, n_real, n_classes in SUITE[:tasks]:
        n = max(MAX_CLASSES, round(n_real * scale))
        classes = min(n_classes, MAX_CLASSES)
        sizes[task] = n
        for split, count in (("train", classes), ("test", n)):
            for i in range(count):
                folder = root / task / split / f"c{i % classes}"
                folder.mkdir(parents=True, exist_ok=True)
                w = int(size * rng.uniform(1.0, 1.3))
                coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                img = np.asarray(Image.fromarray(coarse).resize((w, size), Image.BICUBIC), dtype=np.int16)
                img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=90)
    return sizes


def make_pool(root: Path, tasks: int, architecture: str = "ViT-B-32"):  # noqa: ANN201 - a ModelPool
    """A random-weight pool of ``architecture`` over the folders written by :func:`write_folders`."""
    import torch
    import torch.nn.functional as F

    from spectral.checkpoints import architecture as arch
    from spectral.data.folders import clip_preprocess, open_folder_dataset
    from spectral.pool import ImagePool, ModelPool, add_visual_prefix

    class ScalePool(ImagePool):
        def __init__(self) -> None:
            self.name = f"scale-{architecture}-{tasks}"
            self.architecture = architecture
            self.task_names = [t for t, _, _ in SUITE[:tasks]]
            torch.manual_seed(0)
            self._base = add_visual_prefix(arch.build_image_encoder(architecture).state_dict())
            embed = self._base["visual.proj"].shape[1]
            g = torch.Generator().manual_seed(1)
            self._heads = {t: F.normalize(torch.randn(min(c, MAX_CLASSES), embed, generator=g), dim=-1)
                           for t, _, c in SUITE[:tasks]}
            self._transform = clip_preprocess(architecture)
            self._data: dict = {}

        def base_state_dict(self):
            return dict(self._base)

        def finetuned_state_dict(self, task):
            return dict(self._base)

        def head(self, task):
            return self._heads[task]

        def dataset(self, task, split):
            if (task, split) not in self._data:
                self._data[(task, split)] = open_folder_dataset(root / task, split, transform=self._transform)
            return self._data[(task, split)]

        def build_image_encoder(self):
            return arch.build_image_encoder(architecture)

    return ScalePool()


class ChildRss:
    """Samples the summed proportional set size (PSS: shared pages divided among their sharers, so the pages a
    forked worker shares with its parent are not counted twice) of this process's live child processes (the
    DataLoader workers) from /proc every 0.2 s; ``peak_mb`` is the largest sum seen. (``ru_maxrss`` of
    RUSAGE_CHILDREN would count whole shared pages, and short-lived helpers that torch and open_clip start at
    import.)"""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        me, total_kb = os.getpid(), 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != me:  # ppid
                    continue
                rollup = (stat.parent / "smaps_rollup").read_text()
                total_kb += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
            except (OSError, IndexError, ValueError, StopIteration):
                continue
        return total_kb / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self._sample())

    def __enter__(self) -> "ChildRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child(args: argparse.Namespace) -> int:
    """One mode in this process: evaluate the zero-shot model on every task; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from spectral.eval.evaluate import task_accuracies, task_accuracies_in_memory

    pool = make_pool(Path(args.data), args.tasks, args.architecture)
    sd = pool.base_state_dict()
    t0 = time.perf_counter()
    with ChildRss() as children:
        if args.child == "old":
            accs, counts = task_accuracies_in_memory(pool, sd, device=args.device, batch_size=args.batch_size)
        else:
            accs, counts = task_accuracies(pool, sd, device=args.device, batch_size=args.batch_size,
                                           cache_dir=args.cache, image_cache=args.child != "decode")
    seconds = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = children.peak_mb
    print(json.dumps({"mode": args.child, "images": sum(counts.values()), "seconds": seconds,
                      "rss_mb": own, "worker_rss_mb": workers, "accuracies": accs}))
    return 0


def run_mode(mode: str, data: Path, cache: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--cache", str(cache),
           "--tasks", str(args.tasks), "--threads", str(args.threads), "--device", args.device,
           "--batch-size", str(args.batch_size), "--architecture", args.architecture]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the sizes 10× apart: peak RSS varies by about ±60 MB from run to run, which over a 4× span (438 → 1,750)
    # read as up to 0.09 MB per image of growth that was not there
    parser.add_argument("--scales", default="0.005,0.05",
                        help="comma-separated fractions of the real test-set sizes (two or more give the slope)")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--modes", default="old,cold,warm", help="old, decode (streamed, no cache), cold, warm")
    parser.add_argument("--architecture", default="ViT-B-32")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--quick", action="store_true", help="tiny images (64 px), for the smoke test")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="spectral-scale-"))
    results: dict[str, list[dict]] = {m: [] for m in modes}
    try:
        for scale in scales:
            data, cache = work / f"data-{scale}", work / f"cache-{scale}"
            t0 = time.perf_counter()
            sizes = write_folders(data, scale, args.tasks, size=64 if args.quick else 256)
            print(f"# scale {scale}: {sum(sizes.values())} test images {sizes}, written in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            for mode in modes:
                r = run_mode(mode, data, cache, args)
                results[mode].append(r)
                print(f"# {mode} at scale {scale}: {r['images']} images, {r['seconds']:.1f} s, "
                      f"peak RSS {r['rss_mb']:.0f} MB (workers {r['worker_rss_mb']:.0f} MB)", flush=True)
            accs = [results[m][-1]["accuracies"] for m in modes]
            if any(a != accs[0] for a in accs):
                print(f"# WARNING: accuracies differ between modes at scale {scale}: {accs}")
            else:
                print(f"# accuracies identical across modes at scale {scale}")
        print(f"architecture: {args.architecture}")
        for mode in modes:
            for r, scale in zip(results[mode], scales):
                tag = f"{mode}_{scale:g}"
                print(f"{tag}_images: {r['images']}")
                print(f"{tag}_peak_rss_mb: {r['rss_mb']:.0f}")
                print(f"{tag}_worker_peak_pss_mb: {r['worker_rss_mb']:.0f}")
                print(f"{tag}_images_per_s: {r['images'] / r['seconds']:.2f}")
            if len(scales) >= 2:
                a, b = results[mode][0], results[mode][-1]
                slope = (b["rss_mb"] - a["rss_mb"]) / max(1, b["images"] - a["images"])
                print(f"{mode}_rss_growth_mb_per_image: {slope:.4f}")
        last = {m: results[m][-1] for m in modes}
        if "old" in last:
            for m in ("cold", "warm", "decode"):
                if m in last:
                    print(f"old_over_{m}_peak_rss: {last['old']['rss_mb'] / last[m]['rss_mb']:.2f}")
                    print(f"{m}_over_old_images_per_s: "
                          f"{(last[m]['images'] / last[m]['seconds']) / (last['old']['images'] / last['old']['seconds']):.2f}")
        if "cold" in last and "warm" in last:
            print(f"warm_over_cold_images_per_s: {last['cold']['seconds'] / last['warm']['seconds']:.2f}")
            cache_bytes = sum(f.stat().st_size for f in (work / f"cache-{scales[-1]}").rglob("*") if f.is_file())
            print(f"image_cache_mb_per_image: {cache_bytes / 2**20 / last['warm']['images']:.4f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
