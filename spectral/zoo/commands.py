"""``python -m spectral zoo build|info``: build the demo zoo into cache/ once, and show what it holds."""
from __future__ import annotations

import argparse
import time
from typing import Any

from spectral.zoo.tasks import SUITES


def register(subparsers: Any) -> None:
    """Add the ``zoo`` command group to the CLI's ``argparse`` sub-parsers."""
    zoo = subparsers.add_parser("zoo", help="the demo zoo: tiny open_clip CLIPs fine-tuned on generated tasks")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)

    p = sub.add_parser("build", help="build (or complete) the demo zoo in cache/zoo/; reuses what exists")
    _common(p)
    p.add_argument("--force", action="store_true", help="rebuild from scratch even if the zoo exists")
    p.add_argument("--family", default="clip", choices=["clip", "lm"],
                   help="clip: the image zoo (zoo-8/14/20); lm: the language zoo lm-zoo-7 (a tiny GPT-2 and 7 "
                        "GLUE-shaped tasks, Hugging Face folders and GLUE TSV files)")
    p.add_argument("--root", default=None, help="lm family: output folder (default <cache>/zoo/lm-zoo-7)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("info", help="tasks, accuracies and files of a built zoo")
    _common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("report", help="how the zoo compares to real fine-tunes: fine-tuning gap, TSV-C at 10%% "
                                      "of the rank, Task Arithmetic at α = 1 vs its best α, task-vector cosine")
    p.add_argument("--pool", default="zoo-8", help="zoo-8 | zoo-14 | zoo-20 (built first if missing)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: cache/ or $SPECTRAL_CACHE_DIR)")
    p.add_argument("--methods", action="store_true",
                   help="also TSV-M, Iso-C, Iso-CTS (α chosen on validation) and the best NAI (slower)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=cmd_report)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=int, default=8, choices=sorted(SUITES), help="suite size (8 ⊂ 14 ⊂ 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole build (default 0)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: cache/ or $SPECTRAL_CACHE_DIR)")
    p.add_argument("--config", default="default", choices=["default", "micro"],
                   help="zoo configuration: default (the demo zoo) or micro (4 tasks, seconds, for smoke tests)")


def _config(args: argparse.Namespace) -> Any:
    from spectral.zoo.build import ZooConfig

    return ZooConfig.micro() if args.config == "micro" else ZooConfig()


def _num_tasks(args: argparse.Namespace) -> int | None:
    return None if args.config == "micro" else args.tasks


def cmd_build(args: argparse.Namespace) -> int:
    if getattr(args, "family", "clip") == "lm":
        return cmd_build_lm(args)
    from spectral.progress import tqdm_progress
    from spectral.zoo.build import build_zoo
    from spectral.zoo.pool import ZooPool

    t0 = time.perf_counter()
    with tqdm_progress(f"zoo {args.config} {args.tasks if args.config == 'default' else ''}".strip()) as progress:
        root = build_zoo(_num_tasks(args), seed=args.seed, cache_dir=args.cache_dir, config=_config(args),
                         progress=progress, force=args.force)
    pool = ZooPool(root, num_tasks=_num_tasks(args))
    print(f"{pool.name} ready in {root} ({time.perf_counter() - t0:.1f} s)")
    _print_table(pool)
    return 0


def cmd_build_lm(args: argparse.Namespace) -> int:
    """``zoo build --family lm``: the language zoo (``--config micro`` builds the seconds-sized one)."""
    import json

    from spectral.progress import tqdm_progress
    from spectral.zoo.lm import build_lm_zoo, lm_zoo_root

    size = "micro" if args.config == "micro" else "full"
    root = args.root or lm_zoo_root(args.cache_dir, size)
    t0 = time.perf_counter()
    with tqdm_progress(f"lm-zoo-7 {size}") as progress:
        root = build_lm_zoo(root, seed=args.seed, size=size, progress=progress, force=args.force)
    m = json.loads((root / "manifest.json").read_text())
    print(f"lm-zoo-7 ready in {root} ({time.perf_counter() - t0:.1f} s)")
    print(f"{'task':6s} {'dataset':7s} {'metric':8s} {'base+head':>9s} {'fine-tuned':>10s}  (dev)")
    for t, e in m["tasks"].items():
        print(f"{t:6s} {e['dataset']:7s} {e['metric']:8s} {e['dev']['base_with_head']:9.3f} "
              f"{e['dev']['finetuned']:10.3f}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from spectral.zoo.build import ZooError, zoo_root
    from spectral.zoo.pool import ZooPool

    root = zoo_root(args.cache_dir, _config(args), seed=args.seed)
    try:
        pool = ZooPool(root, num_tasks=_num_tasks(args))
    except ZooError as err:
        print(f"not built: {err}")
        return 1
    m = pool.manifest
    print(f"{pool.name}: {root}")
    print(f"model {m['model']['open_clip_name']}; zoo version {m['zoo_version']}; seed {m['seed']}; "
          f"pre-training {m['base'].get('seconds', '?')} s, final loss {m['base']['pretrain']['final_loss']:.3f}")
    _print_table(pool)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from spectral.cli import tqdm_progress
    from spectral.eval.evaluate import Evaluator
    from spectral.eval.results import pool_fingerprint
    from spectral.zoo import open_zoo_pool
    from spectral.zoo.report import format_lines, profile_of, save_report, zoo_report
    from spectral.cache import default_cache_dir
    from pathlib import Path

    with tqdm_progress(f"{args.pool} report") as progress:
        pool = open_zoo_pool(args.pool, cache_dir=args.cache_dir, progress=progress)
        store = (Path(args.cache_dir) if args.cache_dir else default_cache_dir()) / "results.sqlite"
        ev = Evaluator(pool, store=store, split="test", device=args.device, cache_dir=args.cache_dir)
        lines = zoo_report(ev, methods=args.methods, progress=progress)
    save_report(pool.root, pool.name, pool_fingerprint(pool), lines)
    print(f"{pool.name} · test split · {profile_of(pool).paper_heading}")
    for text in format_lines(lines):
        print(text)
    return 0


def _print_table(pool: Any) -> None:
    zs, ft = pool.recorded_accuracy("zeroshot"), pool.recorded_accuracy("finetuned")
    print(f"{'task':16s} {'analogue':14s} {'classes':>7s} {'chance':>7s} {'zero-shot':>9s} {'fine-tuned':>10s}")
    for t in pool.task_names:
        e = pool.manifest["tasks"][t]
        c = len(e["classes"])
        print(f"{t:16s} {e['analogue']:14s} {c:7d} {100 / c:6.1f}% {100 * zs[t]:8.1f}% {100 * ft[t]:9.1f}%")
    n = len(pool.task_names)
    mean_zs, mean_ft = 100 * sum(zs.values()) / n, 100 * sum(ft.values()) / n
    print(f"{'mean':16s} {'':14s} {'':7s} {'':7s} {mean_zs:8.1f}% {mean_ft:9.1f}%")
