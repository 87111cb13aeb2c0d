"""``python -m spectral adapt …``: run, resume, list and compare test-time adaptation runs headlessly.

    python -m spectral adapt run --pool zoo-8 --method adarank --base cart --steps 300 --output runs/cart_adarank
    python -m spectral adapt list
    python -m spectral adapt compare --pool zoo-8 --steps 200       # TA, TA+AdaMerging, TA+AdaRank, CART, CART+AdaRank

A run resumes from its checkpoint in ``<cache>/adapt/`` (Ctrl-C stops it after the current step and keeps the
checkpoint); ``--fresh`` starts over.
"""
from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BASE_ALIASES = {"ta": "task_arithmetic", "task_arithmetic": "task_arithmetic", "cart": "cart"}


def _workspace(args: argparse.Namespace) -> Any:
    """An opened :class:`spectral.app_state.Workspace` (pool, TaskSet, engine and evaluation) for ``--pool``."""
    from spectral.app_state import Workspace

    ws = Workspace(args.pool, device=args.device, cache_dir=args.cache_dir, trust_pickle=args.trust_pickle)
    return ws.open()


def _config(args: argparse.Namespace, pool: Any = None, **override: Any) -> Any:
    from spectral.adapt.run import AdaptConfig, paper_lr

    values = dict(
        method=args.method, base=BASE_ALIASES[args.base], lambda_mode=args.lambda_mode,
        lambda_init=args.lambda_init, k_frac=args.k_frac, mask_filter=args.mask_filter,
        temperature=args.temperature, lr=args.lr if args.lr is not None else paper_lr(pool),
        batch_size=args.batch_size, steps=args.steps, seed=args.seed,
        selection=args.selection, select_every=args.select_every, select_images=args.select_images,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
    )
    values.update(override)
    return AdaptConfig(**values)


def _adapt(ws: Any, config: Any, args: argparse.Namespace) -> Any:
    """Run (or resume) one adaptation with a tqdm bar; Ctrl-C stops after the current step and checkpoints."""
    from spectral.adapt.run import Adaptation
    from spectral.progress import tqdm_progress

    run = Adaptation(ws.engine, ws.pool, config, cache_dir=args.cache_dir)
    if args.fresh:
        run.checkpoint_path.unlink(missing_ok=True)
    stop = threading.Event()
    result_box: dict[str, Any] = {}

    def work(progress: Any) -> None:
        result_box["result"] = run.run(progress=progress, stop=stop)

    with tqdm_progress(config.label) as progress:
        worker = threading.Thread(target=work, args=(progress,), daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.5)
        except KeyboardInterrupt:
            print("\nstopping after the current step (the checkpoint is kept; run again to resume)…")
            stop.set()
            worker.join()
    if "result" not in result_box:
        raise SystemExit(f"adaptation {run.run_id} failed: see the log above")
    return result_box["result"]


def _print_accuracies(rows: dict[str, dict[str, float]], tasks: list[str]) -> None:
    width = max(len(name) for name in rows) + 2
    print("".ljust(width) + " ".join(t[:9].rjust(9) for t in tasks) + "      mean")
    for name, acc in rows.items():
        mean = sum(acc[t] for t in tasks) / len(tasks)
        print(name.ljust(width) + " ".join(f"{acc[t]:9.1f}" for t in tasks) + f" {mean:9.2f}")


def cmd_adapt_run(args: argparse.Namespace) -> int:
    from spectral.adapt.outputs import result_summary, save_result

    _threads(args)
    ws = _workspace(args)
    from spectral.adapt.session import evaluate_result

    result = _adapt(ws, _config(args, ws.pool), args)
    accuracies = evaluate_result(ws, result) if args.evaluate else None  # also recorded in the results store
    summary = result_summary(result, accuracies)
    if args.output:
        paths = save_result(result, args.output, accuracies=accuracies)
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(json.dumps({k: summary[k] for k in ("label", "run_id", "steps_done", "finished", "selection",
                                               "selected_step", "seconds_per_step")}, indent=1))
    if accuracies:
        _print_accuracies({result.label: accuracies}, result.task_names)
    return 0


def cmd_adapt_list(args: argparse.Namespace) -> int:
    from spectral.adapt.checkpoint import read_document
    from spectral.cache import default_cache_dir

    root = (Path(args.cache_dir) if args.cache_dir else default_cache_dir()) / "adapt"
    files = sorted(root.glob("*.safetensors"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not files:
        print(f"no adaptation checkpoints in {root}")
        return 0
    for path in files:
        try:
            doc = read_document(path)
        except Exception as err:  # noqa: BLE001 - list what can be read
            print(f"{path.name}: unreadable ({err})")
            continue
        steps = doc["config"]["steps"]
        print(f"{doc['run_id']}  {doc['label']:<32s} pool={doc['pool']:<10s} step {doc['step']}/{steps}"
              f"  lowest selection entropy at step {doc['best_step']}")
    return 0


def cmd_adapt_compare(args: argparse.Namespace) -> int:
    """Zero-shot, fine-tuned, static TA and CART, then TA+AdaMerging (task- and layer-wise), TA+AdaRank and
    CART+AdaRank for ``--steps`` steps each; every accuracy goes through (and into) the results store."""
    from spectral.adapt.run import Adaptation
    from spectral.adapt.session import evaluate_result

    _threads(args)
    ws = _workspace(args)
    tasks = ws.task_names
    ta = _config(args, ws.pool, method="adarank", base="task_arithmetic", lambda_mode="layer")
    cart = _config(args, ws.pool, method="adarank", base="cart", lambda_mode="layer")
    ta_alpha = Adaptation(ws.engine, ws.pool, ta, cache_dir=args.cache_dir).lambda_init
    cart_alpha = Adaptation(ws.engine, ws.pool, cart, cache_dir=args.cache_dir).lambda_init
    rows: dict[str, dict[str, float]] = {
        "Zero-shot": ws.accuracies("zeroshot"),
        "Fine-tuned": ws.accuracies("finetuned"),
        f"TA (λ={ta_alpha:g})": ws.accuracies("task_arithmetic", {"alpha": ta_alpha}),
        f"CART (λ={cart_alpha:g}, k={cart.k_frac:g})": ws.accuracies("cart", {"alpha": cart_alpha,
                                                                            "k_frac": cart.k_frac}),
    }
    timing: dict[str, float | None] = {}
    configs = (_config(args, ws.pool, method="adamerging", base="task_arithmetic", lambda_mode="task"),
               _config(args, ws.pool, method="adamerging", base="task_arithmetic", lambda_mode="layer"),
               ta, cart)
    from spectral.executor import ray_address

    if ray_address(getattr(args, "ray", None)):
        # the runs go to the cluster and checkpoint into the shared cache; below they resume finished
        timing.update(_adapt_on_ray(args, configs))
        args.fresh = False
    for config in configs:
        result = _adapt(ws, config, args)
        rows[config.label] = evaluate_result(ws, result)
        timing[config.label] = timing.get(config.label) or result.seconds_per_step
    print(f"\n{args.steps} steps each, selection '{args.selection}' (no labels); test accuracy (%) per task:")
    _print_accuracies(rows, tasks)
    print("\ntime per step (s, device " + str(ws.engine.device) + "): "
          + ", ".join(f"{k}: {v:.3f}" for k, v in timing.items() if v))
    return 0


def adapt_unit(*, pool: str, cache_dir: str, device: str, trust_pickle: bool, config: dict[str, Any],
               fresh: bool = False) -> dict[str, Any]:
    """One adaptation run on a worker (a unit of ``adapt compare --ray``): opens the pool by name, runs or
    resumes to the configured steps and leaves its checkpoint in the shared ``<cache>/adapt/``."""
    from spectral.adapt.run import AdaptConfig, Adaptation
    from spectral.app_state import Workspace

    ws = Workspace(pool, device=device, cache_dir=cache_dir, trust_pickle=trust_pickle).open()
    run = Adaptation(ws.engine, ws.pool, AdaptConfig(**config), cache_dir=cache_dir)
    if fresh:
        run.checkpoint_path.unlink(missing_ok=True)
    result = run.run()
    return {"run_id": result.run_id, "step": result.step, "seconds_per_step": result.seconds_per_step}


def _adapt_on_ray(args: argparse.Namespace, configs: Any) -> dict[str, float | None]:
    """Each adaptation of ``configs`` as one unit on the Ray cluster; seconds per step by label."""
    import dataclasses

    from spectral.cache import default_cache_dir
    from spectral.cli import tqdm_progress
    from spectral.executor import Unit, get_executor

    cache_dir = str(Path(args.cache_dir or default_cache_dir()).resolve())
    with get_executor(args.ray) as executor, tqdm_progress("adaptation runs") as progress:
        gpus = 1.0 if executor.gpus() > 0 else 0.0
        units = [Unit(key=c.label, fn=adapt_unit, label=c.label, num_gpus=gpus,
                      kwargs={"pool": args.pool, "cache_dir": cache_dir, "device": "auto" if gpus else "cpu",
                              "trust_pickle": args.trust_pickle, "config": dataclasses.asdict(c),
                              "fresh": args.fresh})
                 for c in configs]
        timing = {done.unit.key: done.value["seconds_per_step"] for done in executor.run(units, progress)}
        print(executor.summary_line("adaptation runs"))
    return timing


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))


def _add_common(p: argparse.ArgumentParser) -> None:
    from spectral.adapt.ste import DEFAULT_TEMPERATURE

    p.add_argument("--pool", required=True, help="zoo-8 | zoo-14 | zoo-20 | pool.yaml | checkpoint folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--cache-dir", default=None, help="cache folder (SVDs, checkpoints; default cache/)")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled checkpoints (runs code on load)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--method", default="adarank", choices=["adarank", "adamerging"])
    p.add_argument("--base", default="task_arithmetic", choices=sorted(BASE_ALIASES))
    p.add_argument("--lambda-mode", default="layer", choices=["layer", "task", "frozen"],
                   help="λ per task per parameter tensor, per task, or fixed")
    p.add_argument("--lambda-init", type=float, default=None, help="initial λ (default: the base method's α)")
    p.add_argument("--k-frac", type=float, default=0.16, help="CART's initial rank fraction (AdaRank: 0.08-0.32)")
    p.add_argument("--mask-filter", default="attn_mlp", choices=["attn_mlp", "default"],
                   help="which matrices get masks (AdaRank's code: attention and MLP weights)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: the papers', 1e-3 for CLIP, 5e-5 for language models)")
    p.add_argument("--batch-size", type=int, default=16, help="unlabelled test images per task per step")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selection", default="last", choices=["last", "min_entropy"],
                   help="result: last step, or lowest entropy on fixed unlabelled images (never test accuracy)")
    p.add_argument("--select-every", type=int, default=10)
    p.add_argument("--select-images", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=0,
                   help="record a test-accuracy trace every N steps (uses labels; display only)")
    p.add_argument("--fresh", action="store_true", help="discard an existing checkpoint and start over")


def register(subparsers: Any) -> None:
    adapt = subparsers.add_parser("adapt", help="test-time adaptation: AdaRank, AdaMerging")
    sub = adapt.add_subparsers(dest="adapt_command", required=True)
    p = sub.add_parser("run", help="run or resume one adaptation")
    _add_common(p)
    p.add_argument("--output", "-o", default=None, help="folder for merged/masks/lambdas safetensors and traces")
    p.add_argument("--evaluate", action="store_true", help="evaluate the selected model on every task's test split")
    p.set_defaults(func=cmd_adapt_run)
    p = sub.add_parser("list", help="adaptation checkpoints in the cache")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_adapt_list)
    p = sub.add_parser("compare", help="TA, CART and their adaptive versions on one pool, evaluated")
    _add_common(p)
    from spectral.eval.commands import add_ray_argument

    add_ray_argument(p)
    p.set_defaults(func=cmd_adapt_compare)
