"""``python -m spectral …``: headless cache builds, merges, sweeps and exports.

Commands from other parts of the library (zoo, eval, checkpoints, figures) register themselves through a
``register(subparsers)`` function in their ``commands`` module.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from spectral.errors import SpectralError
from spectral.progress import tqdm_progress

log = logging.getLogger("spectral")

COMMAND_MODULES = (
    "spectral.zoo.commands",
    "spectral.eval.commands",
    "spectral.checkpoints.commands",
    "spectral.figures.commands",
    "spectral.adapt.commands",
)


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["k_frac=0.1", "orthogonalisation=whitening"]`` → typed dict (numbers and booleans parsed as JSON)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpectralError(f"parameter {pair!r} must look like name=value")
        name, raw = pair.split("=", 1)
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def load_taskset(args: argparse.Namespace):
    """A TaskSet from ``--pool`` (demo zoo name, pool YAML or checkpoint folder) or ``--base`` + ``--finetuned``."""
    from spectral.taskset import TaskSet

    hf_pool = _hf_pool(args)
    if hf_pool is not None:  # Hugging Face model folders: the pool's canonical bodies and matrix rule
        return TaskSet.from_pool(hf_pool, matrix_filter=hf_pool.matrix_filter_named(args.matrix_filter))
    if getattr(args, "_pool", None) is not None and getattr(args, "base", None):  # LoRA adapters on a CLIP base
        return TaskSet.from_pool(args._pool, matrix_filter=args.matrix_filter)
    if getattr(args, "base", None):
        if not args.finetuned:
            raise SpectralError("--base needs at least one --finetuned checkpoint")
        from spectral.checkpoints import load_checkpoint

        base = load_checkpoint(args.base, trust_pickle=args.trust_pickle).visual
        finetuned = {Path(p).stem: load_checkpoint(p, trust_pickle=args.trust_pickle).visual for p in args.finetuned}
        return TaskSet(base, finetuned, matrix_filter=args.matrix_filter, name=str(args.base))
    if not getattr(args, "pool", None):
        raise SpectralError("give a model pool with --pool (zoo-8, a pool YAML or a folder) or --base/--finetuned")
    pool = getattr(args, "_pool", None) or open_pool(args.pool, trust_pickle=args.trust_pickle)
    return TaskSet.from_pool(pool, matrix_filter=args.matrix_filter)


def _hf_pool(args: argparse.Namespace):
    """The HFPool of ``--base DIR --finetuned DIR ...`` (model folders) or of a ``--pool`` of them, else None."""
    if not hasattr(args, "_hf_pool"):
        from spectral.checkpoints.hf import is_language_folder
        from spectral.checkpoints.hf_pool import HFPool

        from spectral.checkpoints.lora import LoRAPool, is_adapter_folder, lora_pool_of_folders

        pool = None
        if getattr(args, "base", None) and args.finetuned and any(is_adapter_folder(p) for p in args.finetuned):
            args._pool = lora_pool_of_folders(args.base, list(args.finetuned), trust_pickle=args.trust_pickle)
            # LoRA adapters on a Hugging Face base: written as the base's folder, like HF fine-tunes
            pool = args._pool if isinstance(args._pool.delegate, HFPool) else None
        elif getattr(args, "base", None) and any(is_language_folder(p) for p in [args.base, *args.finetuned]):
            pool = HFPool.from_folders(args.base, list(args.finetuned))  # named errors for folders without config
        elif getattr(args, "pool", None) and not args.pool.startswith("zoo-"):  # CLIP zoos are never HF folders
            opened = open_pool(args.pool, trust_pickle=args.trust_pickle)
            hf_backed = isinstance(opened, LoRAPool) and isinstance(opened.delegate, HFPool)
            pool = opened if isinstance(opened, HFPool) or hf_backed else None
            args._pool = opened
        args._hf_pool = pool
    return args._hf_pool


def open_pool(spec: str, *, trust_pickle: bool = False):
    """Resolve a pool spec: ``zoo-8``/``zoo-14``/``zoo-20``/``lm-zoo-7`` → a demo zoo; anything else →
    checkpoint loaders."""
    if spec.startswith(("zoo-", "lm-zoo-", "lora-zoo-")):
        from spectral.zoo import open_zoo_pool

        return open_zoo_pool(spec)
    from spectral.checkpoints import open_pool as open_checkpoint_pool

    return open_checkpoint_pool(spec, trust_pickle=trust_pickle)


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", help="zoo-8 | zoo-14 | zoo-20 | lm-zoo-7 | pool.yaml | checkpoint folder")
    parser.add_argument("--base", help="base state dict (.safetensors or .pt) or Hugging Face model folder, "
                                       "instead of --pool")
    parser.add_argument("--finetuned", nargs="*", default=[], help="fine-tuned state dicts or model folders (with --base)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow pickled checkpoints (unpickling runs code: only for files you trust)")
    parser.add_argument("--matrix-filter", default="default", choices=["default", "attn_mlp"],
                        help="which 2-D parameters are merged as matrices")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--cache-dir", default=None, help="SVD cache folder (default: cache/ or $SPECTRAL_CACHE_DIR)")


def cmd_methods(args: argparse.Namespace) -> int:
    from spectral.methods import REGISTRY
    from spectral.plugins import load_plugins, plugin_failures, plugin_source

    load_plugins()
    for m in REGISTRY.values():
        source = plugin_source(m.name)
        print(f"{m.name:16s} {m.display_name} — {m.paper}" + (f"  [plugin: {source}]" if source else ""))
        for p in m.params:
            rng = f" [{p.low}, {p.high}]" if p.low is not None else (f" {list(p.choices)}" if p.choices else "")
            print(f"    {p.name}={p.default}{rng}  {p.help}")
    for failure in plugin_failures():
        print(f"plugin not loaded: {failure.source}: {failure.error}", file=sys.stderr)
    return 0


def cmd_cache_build(args: argparse.Namespace) -> int:
    from spectral.engine import Engine

    engine = Engine(load_taskset(args), cache_dir=args.cache_dir, device=args.device)
    from spectral.executor import ray_address
    from spectral.io import remove_stale_temporaries

    for tmp in remove_stale_temporaries(engine.cache.svd_dir):  # left by killed builders (untouched for an hour)
        log.info("removed stale temporary %s", tmp.path)
    if ray_address(getattr(args, "ray", None)):
        computed = _cache_build_on_ray(args, engine)
    else:
        with tqdm_progress("SVD cache") as progress:
            computed = engine.build_cache(progress=progress)
    status = engine.cache_status()
    print(f"computed {computed} SVDs; {status['cached']}/{status['total']} task matrices cached in {engine.cache.root}")
    stats = engine.last_build_stats
    if computed and stats:
        print(f"{stats['total']:.1f} s on {engine.device}: hashing {stats['hash']:.1f} s, task matrices "
              f"{stats['fill']:.1f} s, SVDs {stats['svd']:.1f} s, waiting for the disk {stats['wait_for_writers']:.1f} s")
    return 0


def _cache_build_on_ray(args: argparse.Namespace, engine: Any) -> int:
    """``cache build --ray``: batches of same-shape SVDs as units on the cluster, written to the shared cache."""
    from spectral.cache import default_cache_dir
    from spectral.eval.distributed import build_cache
    from spectral.executor import get_executor

    if not getattr(args, "pool", None):
        raise SpectralError("cache build --ray needs --pool (workers open the pool by its name or path)")
    with get_executor(args.ray) as executor, tqdm_progress("SVD cache") as progress:
        computed = build_cache(engine, executor, pool_spec=args.pool, pool_cache_dir=str(Path(default_cache_dir()).resolve()),
                               matrix_filter=args.matrix_filter, trust_pickle=args.trust_pickle, progress=progress)
        print(executor.summary_line("SVD batches"))
    return computed


def cmd_cache_status(args: argparse.Namespace) -> int:
    from spectral import housekeeping as hk
    from spectral.cache import default_cache_dir
    from spectral.io import find_temporaries

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if getattr(args, "pool", None) or getattr(args, "base", None):
        from spectral.engine import Engine

        engine = Engine(load_taskset(args), cache_dir=root, device=args.device)
        status = engine.cache_status()
        entries, size = engine.cache.disk_usage()
        print(f"{status['cached']}/{status['total']} task matrices cached; "
              f"{entries} entries, {size / 2**20:.1f} MiB in {engine.cache.svd_dir}")
    usage = hk.usage_by_kind(root)
    print(f"{root}: {hk.format_size(hk.total_size(root))} on disk")
    notes = {"svd": "SVD factors, evictable", "images": "preprocessed images, evictable",
             "heads": "zero-shot heads, evictable", "zoo": "demo zoo, only `cache clean --kind zoo`",
             "results": "never deleted", "other": "not managed", "temporary": "writes in progress or left behind"}
    for kind in (*hk.KINDS, "other", "temporary"):
        n, size = usage[kind]
        if n or kind in hk.KINDS:
            print(f"  {kind:10s} {hk.format_size(size):>10s}  {n:6d} entries  ({notes[kind]})")
    budget = hk.budget_bytes()
    if budget is not None:
        print(f"  budget     {hk.format_size(budget):>10s}  ({hk.BUDGET_ENV}: least recently used evictable entries "
              "are removed after writes)")
    stale = [t for t in find_temporaries(root) if t.age_s >= args.stale_after]
    for t in stale:
        print(f"stale temporary ({t.age_s / 3600:.1f} h old, {hk.format_size(t.size)}): {t.path}")
    if stale:
        print(f"{len(stale)} stale temporaries: remove them with `python -m spectral cache clean --temps`")
    return 0


def cmd_cache_clean(args: argparse.Namespace) -> int:
    from spectral import housekeeping as hk
    from spectral.cache import default_cache_dir
    from spectral.io import remove_stale_temporaries

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if not (args.kind or args.pool or args.base or args.lru_to is not None or args.temps):
        raise SpectralError("say what to clean: --kind KIND, --pool POOL, --lru-to SIZE and/or --temps "
                            "(add --dry-run to list without deleting)")
    if "results" in (args.kind or []):
        raise SpectralError("results (results.sqlite, adapt/) are never deleted by `cache clean`")
    chosen: dict[Path, hk.Entry] = {}
    for kind in args.kind or []:
        for e in hk.list_entries(root, [kind]):
            chosen[e.path] = e
    if args.pool or args.base:
        for e in hk.entries_of_pool(root, hk.pool_svd_keys(load_taskset(args))):
            chosen[e.path] = e
    if args.lru_to is not None:
        target = hk.parse_size(args.lru_to)
        # the size once the entries chosen above are gone, then least recently used entries down to the target
        remaining = hk.total_size(root) - sum(e.size for e in chosen.values())
        for e in sorted(hk.list_entries(root, hk.EVICTABLE), key=lambda e: (e.last_used, str(e.path))):
            if remaining <= target:
                break
            if e.path not in chosen:
                chosen[e.path] = e
                remaining -= e.size
        if remaining > target:
            print(f"note: {hk.format_size(remaining)} remain above {hk.format_size(target)}: results, the zoo and "
                  "other files are not evicted by --lru-to")
    entries = list(chosen.values())
    verb = "would delete" if args.dry_run else "deleting"
    for e in entries:
        when = _dt.datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
        print(f"{verb} {e.kind:7s} {hk.format_size(e.size):>10s}  last used {when}  {e.path}")
    by_kind: dict[str, int] = {}
    for e in entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + e.size
    summary = ", ".join(f"{k} {hk.format_size(v)}" for k, v in sorted(by_kind.items())) or "nothing"
    if args.dry_run:
        print(f"dry run: would delete {len(entries)} entries ({summary}); nothing was deleted")
        if args.temps:
            from spectral.io import find_temporaries

            stale = [t for t in find_temporaries(root) if t.age_s >= args.stale_after]
            print(f"dry run: would delete {len(stale)} stale temporaries")
        return 0
    freed = hk.delete(entries, allow_zoo=True)
    print(f"deleted {len(entries)} entries ({summary}); freed {hk.format_size(freed)}")
    if args.temps:
        removed = remove_stale_temporaries(root, older_than_s=args.stale_after)
        print(f"deleted {len(removed)} stale temporaries ({hk.format_size(sum(t.size for t in removed))})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from spectral.io import atomic_save_tensors
    from spectral.engine import Engine

    plan = _mergekit_plan(args) if getattr(args, "mergekit_config", None) else None  # issue 25: mergekit YAML
    if plan is None and not args.method:
        raise SpectralError("merge needs --method (see `python -m spectral methods`) or --mergekit-config FILE")
    taskset = load_taskset(args)
    if plan is not None and plan.weights is not None:  # mergekit's per-model weights scale each Δ_t
        from spectral.mergekit import WeightedTaskSet

        taskset = WeightedTaskSet(taskset, plan.weights)
    # one merge, no slider moves after it: no factors or derived layer data kept in memory (each layer's factors
    # are read from the disk cache once), so memory stays at about one layer's working set
    engine = Engine(taskset, cache_dir=args.cache_dir, device=args.device, memory_bytes=0,
                    derived_bytes=0, merges_kept=0)
    params = dict(plan.params) if plan is not None else parse_params(args.param)
    if args.alpha is not None and plan is None:
        params["alpha"] = args.alpha
    method, alpha, resolved = engine.resolve(plan.method if plan is not None else args.method, params)
    meta = {"method": method.name, "alpha": repr(alpha), "params": json.dumps(resolved, sort_keys=True),
            "tasks": json.dumps(engine.taskset.task_names)}
    hf_pool = _hf_pool(args)
    if hf_pool is not None:  # a Hugging Face folder in the base's layout, merged shard by shard as it is written
        from spectral.checkpoints.hf import write_hf_folder

        with tqdm_progress(f"merge {method.name}") as progress:
            merged = engine.lazy_merge(method.name, progress=progress, **params)
            write_hf_folder(args.output, hf_pool.base, merged, metadata={**meta, "merged_by": "spectral"},
                            inputs=[hf_pool.base.path, *(f.path for f in hf_pool.folders.values())])
        if plan is not None and plan.dtype is not None:  # mergekit's dtype: the written tensors' dtype
            from spectral.mergekit import cast_folder

            cast_folder(args.output, plan.dtype)
        print(f"wrote {args.output}/: {method.display_name}, alpha={alpha}, {json.dumps(resolved, sort_keys=True)}")
        return 0
    with tqdm_progress(f"merge {method.name}") as progress:
        merged = engine.merge(method.name, progress=progress, **params)
    if plan is not None and plan.dtype is not None:  # mergekit's dtype
        merged = {k: v.to(plan.dtype) if v.is_floating_point() else v for k, v in merged.items()}
    atomic_save_tensors(Path(args.output), {k: v.contiguous() for k, v in merged.items()}, meta)
    print(f"wrote {args.output}: {method.display_name}, alpha={alpha}, {json.dumps(resolved, sort_keys=True)}")
    return 0


def _mergekit_plan(args: argparse.Namespace) -> Any:
    """``merge --mergekit-config FILE``: the config's models become ``--base``/``--finetuned`` (spectral.mergekit)."""
    from spectral.mergekit import read_config

    given = [flag for flag, value in (("--method", args.method), ("--param", args.param), ("--alpha", args.alpha),
                                      ("--pool", args.pool), ("--base", args.base), ("--finetuned", args.finetuned))
             if value]
    if given:
        raise SpectralError(f"--mergekit-config gives the method, parameters and models; drop {', '.join(given)}")
    plan = read_config(args.mergekit_config)
    for warning in plan.warnings:
        log.warning("%s: %s", args.mergekit_config, warning)
    args.base, args.finetuned = str(plan.base), [str(p) for p in plan.models]
    return plan


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spectral", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="list merging methods and their parameters")
    p.set_defaults(func=cmd_methods)

    cache = sub.add_parser("cache", help="SVD cache").add_subparsers(dest="cache_command", required=True)
    p = cache.add_parser("build", help="compute the SVD of every task matrix once")
    add_pool_arguments(p)
    from spectral.eval.commands import add_ray_argument

    add_ray_argument(p)
    p.set_defaults(func=cmd_cache_build)
    p = cache.add_parser("status", help="size on disk by kind; with a pool, how much of its SVDs is cached")
    add_pool_arguments(p)
    p.add_argument("--stale-after", type=float, default=3600.0, metavar="SECONDS",
                   help="temporaries older than this are reported as stale (default: 3600)")
    p.set_defaults(func=cmd_cache_status)
    p = cache.add_parser("clean", help="delete cache entries by kind, by pool or least recently used (results never)")
    add_pool_arguments(p)  # --pool / --base: that pool's SVD entries
    p.add_argument("--kind", action="append", choices=["svd", "images", "heads", "zoo", "results"],
                   help="delete every entry of this kind (repeatable); results are never deleted")
    p.add_argument("--lru-to", metavar="SIZE", default=None,
                   help="delete least recently used svd/images/heads entries until the cache is at most SIZE "
                        "(e.g. 20G, 500MB, 1.5GiB)")
    p.add_argument("--temps", action="store_true", help="also delete stale temporaries of interrupted writes")
    p.add_argument("--stale-after", type=float, default=3600.0, metavar="SECONDS",
                   help="a temporary untouched this long belongs to no live writer (default: 3600)")
    p.add_argument("--dry-run", "-n", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_cache_clean)

    p = sub.add_parser("merge", help="merge a pool with one method and write a safetensors state dict")
    add_pool_arguments(p)
    p.add_argument("--method", help="see `python -m spectral methods` (or --mergekit-config)")
    p.add_argument("--mergekit-config", metavar="YAML", default=None,
                   help="run a mergekit YAML (merge_method, models, base_model, parameters, dtype; also spectral's "
                        "own methods): see docs/lora-llms.md")
    p.add_argument("--alpha", type=float, default=None, help="scaling (default: the method's paper default)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter")
    p.add_argument("--output", "-o", required=True,
                   help="output .safetensors (a Hugging Face folder when the inputs are model folders)")
    p.set_defaults(func=cmd_merge)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # that part of the library is not installed in this tree
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except SpectralError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
