"""``python -m spectral …``: headless cache builds, merges, sweeps and exports.

Commands from other parts of the library (zoo, eval, checkpoints, figures) register themselves through a
``register(subparsers)`` function in their ``commands`` module.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from spectral.errors import SpectralError

log = logging.getLogger("spectral")

COMMAND_MODULES = (
    "spectral.zoo.commands",
    "spectral.eval.commands",
    "spectral.checkpoints.commands",
    "spectral.figures.commands",
    "spectral.adapt.commands",
)


@contextmanager
def tqdm_progress(desc: str = "") -> Iterator[Any]:
    """A ``progress(i, n, text)`` callback drawing one tqdm bar (re-totalled when n changes)."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def progress(i: int, n: int, text: str) -> None:
        if bar.total != n:
            bar.reset(total=n)
        bar.n = i
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


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

    if getattr(args, "base", None):
        if not args.finetuned:
            raise SpectralError("--base needs at least one --finetuned checkpoint")
        from spectral.checkpoints import load_checkpoint

        base = load_checkpoint(args.base, trust_pickle=args.trust_pickle).visual
        finetuned = {Path(p).stem: load_checkpoint(p, trust_pickle=args.trust_pickle).visual for p in args.finetuned}
        return TaskSet(base, finetuned, matrix_filter=args.matrix_filter, name=str(args.base))
    if not getattr(args, "pool", None):
        raise SpectralError("give a model pool with --pool (zoo-8, a pool YAML or a folder) or --base/--finetuned")
    return TaskSet.from_pool(open_pool(args.pool, trust_pickle=args.trust_pickle), matrix_filter=args.matrix_filter)


def open_pool(spec: str, *, trust_pickle: bool = False):
    """Resolve a pool spec: ``zoo-8``/``zoo-14``/``zoo-20`` → the demo zoo; anything else → checkpoint loaders."""
    if spec.startswith("zoo-"):
        from spectral.zoo import open_zoo_pool

        return open_zoo_pool(spec)
    from spectral.checkpoints import open_pool as open_checkpoint_pool

    return open_checkpoint_pool(spec, trust_pickle=trust_pickle)


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", help="zoo-8 | zoo-14 | zoo-20 | pool.yaml | checkpoint folder")
    parser.add_argument("--base", help="base state dict (.safetensors or .pt) instead of --pool")
    parser.add_argument("--finetuned", nargs="*", default=[], help="fine-tuned state dicts (with --base)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow pickled checkpoints (unpickling runs code: only for files you trust)")
    parser.add_argument("--matrix-filter", default="default", choices=["default", "attn_mlp"],
                        help="which 2-D parameters are merged as matrices")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--cache-dir", default=None, help="SVD cache folder (default: cache/ or $SPECTRAL_CACHE_DIR)")


def cmd_methods(args: argparse.Namespace) -> int:
    from spectral.methods import REGISTRY

    for m in REGISTRY.values():
        print(f"{m.name:16s} {m.display_name} — {m.paper}")
        for p in m.params:
            rng = f" [{p.low}, {p.high}]" if p.low is not None else (f" {list(p.choices)}" if p.choices else "")
            print(f"    {p.name}={p.default}{rng}  {p.help}")
    return 0


def cmd_cache_build(args: argparse.Namespace) -> int:
    from spectral.engine import Engine

    engine = Engine(load_taskset(args), cache_dir=args.cache_dir, device=args.device)
    from spectral.executor import ray_address

    if ray_address(getattr(args, "ray", None)):
        computed = _cache_build_on_ray(args, engine)
    else:
        with tqdm_progress("SVD cache") as progress:
            computed = engine.build_cache(progress=progress)
    status = engine.cache_status()
    print(f"computed {computed} SVDs; {status['cached']}/{status['total']} task matrices cached in {engine.cache.root}")
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
    from spectral.engine import Engine

    engine = Engine(load_taskset(args), cache_dir=args.cache_dir, device=args.device)
    status = engine.cache_status()
    entries, size = engine.cache.disk_usage()
    print(f"{status['cached']}/{status['total']} task matrices cached; "
          f"{entries} entries, {size / 2**20:.1f} MiB in {engine.cache.svd_dir}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from spectral.cache import atomic_save_tensors
    from spectral.engine import Engine

    engine = Engine(load_taskset(args), cache_dir=args.cache_dir, device=args.device)
    params = parse_params(args.param)
    if args.alpha is not None:
        params["alpha"] = args.alpha
    method, alpha, resolved = engine.resolve(args.method, params)
    with tqdm_progress(f"merge {method.name}") as progress:
        merged = engine.merge(method.name, progress=progress, **params)
    meta = {"method": method.name, "alpha": repr(alpha), "params": json.dumps(resolved, sort_keys=True),
            "tasks": json.dumps(engine.taskset.task_names)}
    atomic_save_tensors(Path(args.output), {k: v.contiguous() for k, v in merged.items()}, meta)
    print(f"wrote {args.output}: {method.display_name}, alpha={alpha}, {json.dumps(resolved, sort_keys=True)}")
    return 0


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
    p = cache.add_parser("status", help="how much of a pool's SVDs is cached")
    add_pool_arguments(p)
    p.set_defaults(func=cmd_cache_status)

    p = sub.add_parser("merge", help="merge a pool with one method and write a safetensors state dict")
    add_pool_arguments(p)
    p.add_argument("--method", required=True, help="see `python -m spectral methods`")
    p.add_argument("--alpha", type=float, default=None, help="scaling (default: the method's paper default)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter")
    p.add_argument("--output", "-o", required=True, help="output .safetensors")
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
