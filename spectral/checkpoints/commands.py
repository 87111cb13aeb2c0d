"""CLI: ``python -m spectral pool discover DIR``, ``pool check POOL``, ``pool inspect FILE``."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["register", "spec_to_yaml"]


def spec_to_yaml(spec: Any, relative_to: Path | None = None) -> str:
    """A :class:`~spectral.checkpoints.pool.PoolSpec` as pool YAML (paths relative to ``relative_to``)."""
    import yaml

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        if relative_to is None:
            return str(p)
        try:
            return os.path.relpath(Path(p).resolve(), Path(relative_to).resolve())
        except ValueError:
            return str(p)

    data: dict[str, Any] = {}
    if spec.name:
        data["name"] = spec.name
    if spec.architecture:
        data["architecture"] = spec.architecture
    if spec.quick_gelu is not None:
        data["quick_gelu"] = spec.quick_gelu
    data["base"] = rel(spec.base)
    if spec.text_checkpoint:
        data["text_checkpoint"] = rel(spec.text_checkpoint)
    if getattr(spec, "data_root", None):
        data["data_root"] = rel(spec.data_root)
    tasks = []
    for t in spec.tasks:
        entry: dict[str, Any] = {"name": t.name, "checkpoint": rel(t.checkpoint)}
        if t.head:
            entry["head"] = rel(t.head)
        if t.dataset and t.dataset != t.name:
            entry["dataset"] = t.dataset
        if t.class_names:
            entry["class_names"] = list(t.class_names)
        if t.templates:
            entry["templates"] = list(t.templates)
        if t.data:
            # a relative 'data:' is read against data_root when the pool has one
            root = getattr(spec, "data_root", None)
            entry["data"] = (os.path.relpath(Path(t.data).resolve(), Path(root).resolve()) or "."
                             if root and relative_to is not None else rel(t.data))
        tasks.append(entry)
    data["tasks"] = tasks
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def cmd_discover(args: argparse.Namespace) -> int:
    from spectral.checkpoints.pool import discover_pool

    spec = discover_pool(args.directory, model=args.model, data_root=args.data_root)
    out = Path(args.write) if args.write else None
    text = spec_to_yaml(spec, relative_to=out.parent if out else None)
    if out:
        from spectral.io import atomic_write_bytes

        atomic_write_bytes(out, text.encode())
        print(f"wrote {out}: {spec.layout} layout, {len(spec.tasks)} tasks")
    else:
        print(text, end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from spectral.checkpoints.pool import open_pool

    pool = open_pool(args.pool, trust_pickle=args.trust_pickle, data_root=args.data_root)
    report = pool.check(heads=not args.no_heads, data=not args.no_data)
    if args.json:
        print(json.dumps({"pool": pool.describe(), "report": report}, indent=2, default=str))
    else:
        print(f"pool {pool.name}: {len(pool.task_names)} tasks")
        for row in report:
            print(f"  [{'ok' if row['ok'] else 'FAIL':4s}] {row['item']}: {row['detail']}")
    return 0 if all(r["ok"] for r in report) else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from spectral.checkpoints.architecture import detect_architecture
    from spectral.checkpoints.formats import load_checkpoint

    loaded = load_checkpoint(args.file, trust_pickle=args.trust_pickle)
    info = {
        "file": str(loaded.path),
        "format": loaded.format,
        "layout": loaded.layout,
        "object": loaded.object_type or None,
        "image_tower_tensors": len(loaded.visual),
        "architecture": detect_architecture(loaded.visual, str(loaded.path)),
        "text_tower": bool(loaded.text and any(k.startswith("transformer.") for k in loaded.text)),
    }
    print(json.dumps(info, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``pool`` command group to ``python -m spectral``."""
    pool = subparsers.add_parser("pool", help="real checkpoint pools: discover, check, inspect")
    sub = pool.add_subparsers(dest="pool_command", required=True)

    p = sub.add_parser("discover", help="find a task_vectors / tall_masks layout and print (or write) its pool YAML")
    p.add_argument("directory")
    p.add_argument("--model", default=None, help="model folder to use when several are present (e.g. ViT-B-32)")
    p.add_argument("--data-root", default=None,
                   help="the papers' data location (MNIST/, cifar-10-batches-py/, dtd/, svhn/, ...): each task's data "
                        "is found under it by its data set's layout, and it is written as the pool's data_root")
    p.add_argument("--write", default=None, metavar="POOL.yaml", help="write the YAML instead of printing it")
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("check", help="load every checkpoint, head and data folder of a pool and report")
    p.add_argument("pool", help="pool.yaml or a checkpoint folder")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow pickled checkpoints (unpickling runs code: only for files you trust)")
    p.add_argument("--no-heads", action="store_true", help="skip heads")
    p.add_argument("--data-root", default=None,
                   help="the data location, for a checkpoint folder or a pool YAML without data_root")
    p.add_argument("--no-data", action="store_true",
                   help="skip the data (otherwise a task without readable data is a failure)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("inspect", help="format, layout and architecture of one checkpoint file")
    p.add_argument("file")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow pickled checkpoints (unpickling runs code: only for files you trust)")
    p.set_defaults(func=cmd_inspect)
