"""``python -m spectral eval|sweep|results``: headless evaluation, sweeps and results export (tqdm progress)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``eval``, ``sweep`` and ``results`` commands to the CLI's ``argparse`` sub-parsers."""
    p = subparsers.add_parser("eval", help="accuracy of a merged (or zero-shot / fine-tuned) model on every task")
    _pool_args(p)
    p.add_argument("--method", default="tsv_m",
                   help="a merging method (see `methods`), or zeroshot / finetuned (default: tsv_m)")
    p.add_argument("--alpha", type=float, default=None, help="scaling (default: the method's paper default)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter")
    p.add_argument("--csv", default=None, help="also write the per-task table to this CSV")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("sweep", help="parameter sweeps: rank, alpha, common, ablation, methods")
    p.add_argument("kind", choices=["rank", "alpha", "common", "ablation", "methods"],
                   help="rank: TSV-C rank fraction per task (TSV Fig. 2); alpha: one method's alpha (Iso Fig. 8); "
                        "common: Iso-CTS common_frac (Iso Fig. 6); ablation: TSV Table 4; methods: all methods "
                        "with alpha chosen on validation")
    _pool_args(p)
    p.add_argument("--method", default="task_arithmetic", help="method of an alpha sweep")
    p.add_argument("--methods", default=None, help="comma-separated methods of a methods table")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter (alpha sweep)")
    p.add_argument("--alphas", default=None, help="comma-separated alpha grid (default 0.1 … 2.0)")
    p.add_argument("--fractions", default=None, help="comma-separated TSV-C rank fractions (rank sweep)")
    p.add_argument("--common-fracs", default=None, help="comma-separated Iso-CTS common fractions (common sweep)")
    p.add_argument("--select-split", default="val", help="split on which alpha is chosen (default val)")
    p.add_argument("--out", default=None, help="write the long table to this CSV")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("results", help="the results database (cache/results.sqlite)")
    p.add_argument("action", choices=["export", "count", "prune"],
                   help="export: CSV of every stored result; count: number of stored runs; prune: delete results "
                        "of other code versions")
    p.add_argument("--store", default=None, help="results database (default: <cache>/results.sqlite)")
    p.add_argument("--out", default="results.csv", help="CSV path for export")
    p.add_argument("--method", default=None, help="only this method (export)")
    p.set_defaults(func=cmd_results)


def _pool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", default="zoo-8", help="zoo-8 | zoo-14 | zoo-20 | pool.yaml | checkpoint folder")
    p.add_argument("--split", default="test", choices=["test", "val"], help="evaluation split (default test)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: cache/ or $SPECTRAL_CACHE_DIR)")
    p.add_argument("--store", default=None, help="results database (default: <cache>/results.sqlite)")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled checkpoints (runs code: trusted only)")
    p.add_argument("--subsample", type=int, default=None, metavar="N",
                   help="quick look: evaluate a fixed, seeded, class-stratified subsample of N images (text examples) "
                        "per task and report 95%% intervals: Wilson for accuracies, bootstrap for MCC and "
                        "normalised token-loss scores (default: the whole split)")
    p.add_argument("--no-image-cache", action="store_true",
                   help="decode image files on every pass instead of caching preprocessed uint8 pixels in "
                        "<cache>/images/")
    add_ray_argument(p)


def add_ray_argument(p: argparse.ArgumentParser) -> None:
    """``--ray ADDRESS``: run the command's units on a Ray cluster (default: $SPECTRAL_RAY_ADDRESS, else here)."""
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster: auto | host:port | local (a private cluster on this machine); "
                        "default $SPECTRAL_RAY_ADDRESS, else in this process")


def _executor(args: argparse.Namespace) -> Any:
    from spectral.executor import get_executor

    return get_executor(getattr(args, "ray", None))


def _run_units(args: argparse.Namespace, ev: Any, executor: Any, fn: Any, progress: Any) -> Any:
    """``fn(ev)`` with its missing evaluations computed on ``executor`` (see spectral.eval.distributed)."""
    from spectral.eval.distributed import run_sweep

    return run_sweep(ev, fn, executor, pool_spec=args.pool, trust_pickle=args.trust_pickle, progress=progress)


def _print_nodes(executor: Any) -> None:
    if executor.is_distributed:
        print(executor.summary_line("points"))


def _floats(text: str | None) -> list[float] | None:
    return None if text is None else [float(x) for x in text.split(",") if x.strip()]


def _store_path(args: argparse.Namespace) -> Path:
    from spectral.cache import default_cache_dir

    if args.store:
        return Path(args.store)
    base = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_dir()
    return base / "results.sqlite"


def open_evaluator(args: argparse.Namespace, progress: Any = None, *, keep_merges: bool = True,
                   skip_missing_data: bool = False):
    """An Evaluator for ``--pool`` (building the demo zoo first if it is missing). It frees the engine's memory
    before every evaluation of a merge (``release_engine_memory``); ``keep_merges=False`` where no alpha of the
    same merge follows (``eval``); ``skip_missing_data``: evaluate the tasks whose data opens, report the others
    (``eval``)."""
    from spectral.eval.evaluate import Evaluator

    if args.pool.startswith(("zoo-", "lm-zoo-", "lora-zoo-")):
        from spectral.zoo import open_zoo_pool

        pool = open_zoo_pool(args.pool, cache_dir=args.cache_dir, progress=progress)
    else:
        from spectral.cli import open_pool

        pool = open_pool(args.pool, trust_pickle=args.trust_pickle)
    return Evaluator(pool, store=_store_path(args), split=args.split, device=args.device, cache_dir=args.cache_dir,
                     subsample=getattr(args, "subsample", None),
                     image_cache=not getattr(args, "no_image_cache", False),
                     release_engine_memory=True, keep_merges=keep_merges, skip_missing_data=skip_missing_data)


def cmd_eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from spectral.cli import parse_params
    from spectral.progress import tqdm_progress

    def run(ev: Any, progress: Any = None) -> tuple[dict[str, float], dict[str, float], Any]:
        zs, ft = ev.zeroshot(progress=progress), ev.finetuned(progress=progress)
        if args.method in ("zeroshot", "finetuned"):
            return zs, ft, ev.reference_result(args.method)
        return zs, ft, ev.merged_result(args.method, alpha=args.alpha, progress=progress, **parse_params(args.param))

    with _executor(args) as executor, tqdm_progress(f"{args.pool} {args.method}") as progress:
        ev = open_evaluator(args, progress, keep_merges=False, skip_missing_data=True)
        skipped = ev.unavailable
        if not ev.tasks:
            _report_skipped(skipped)
            return 2
        zs, ft, result = (_run_units(args, ev, executor, run, progress) if executor.is_distributed
                          else run(ev, progress))
        _print_nodes(executor)
        accs = dict(result.accuracies)
    s = ev.summary(accs)
    metrics = [ev.pool.metric(t) for t in accs]
    # `score` is each task's own metric (Matthews correlation for CoLA, else accuracy); `accuracy` only where
    # that is the metric, so a column never holds two kinds of number
    df = pd.DataFrame({"task": list(accs), "metric": metrics, "score": list(accs.values()),
                       "accuracy": [a if m == "accuracy" else float("nan") for a, m in zip(accs.values(), metrics)],
                       "finetuned": [ft[t] for t in accs],
                       "zeroshot": [zs[t] for t in accs], "normalized": [s.normalized_per_task.get(t) for t in accs],
                       "nai": [s.nai_per_task.get(t) for t in accs],
                       # what each score rests on: test images of a CLIP task, examples of a text task
                       "images" if ev.pool.family == "clip" else "examples": [result.counts.get(t) for t in accs]})
    if result.losses:
        # a language-modelling task's score is the normalised one; its mean token losses (lower is better) beside it
        zs_losses = ev.reference_result("zeroshot").losses
        ft_losses = ev.reference_result("finetuned").losses
        df["loss"] = [result.losses.get(t, float("nan")) for t in accs]
        df["loss_base"] = [zs_losses.get(t, float("nan")) for t in accs]
        df["loss_finetuned"] = [ft_losses.get(t, float("nan")) for t in accs]
    if result.is_subsample:
        ci = result.intervals()
        df["ci_low"], df["ci_high"] = [ci[t][0] for t in accs], [ci[t][1] for t in accs]
    params = {} if args.method in ("zeroshot", "finetuned") else ev.resolve(args.method, args.alpha,
                                                                             **parse_params(args.param))
    interval = ("95% Wilson interval" if not result.bounds
                else "95% intervals: Wilson for accuracy, bootstrap percentile for MCC and normalised token-loss "
                     "scores")
    items = "images" if ev.pool.family == "clip" else "examples"
    scope = (f"estimate: stratified subsample of {result.key.subsample} {items} per task, {interval}"
             if result.is_subsample else "whole split")
    print(f"{ev.pool.name} · {args.method} {json.dumps(params, sort_keys=True)} · {args.split} split · {scope}")
    table = df.set_index("task")
    pct = ["score", "accuracy", "finetuned", "zeroshot", "normalized"] + (["ci_low", "ci_high"] if result.is_subsample else [])
    table[pct] = (table[pct] * 100).round(2)
    table["nai"] = table["nai"].astype(float).round(3)
    loss_cols = [c for c in ("loss", "loss_base", "loss_finetuned") if c in table]
    table[loss_cols] = table[loss_cols].astype(float).round(4)
    print(table.to_string())
    if loss_cols:
        print("metric 'normalised': (loss_base - loss) / (loss_base - loss_finetuned), mean token loss pooled over "
              "the scored tokens of the task's text file (base 0, fine-tune 1; shown ×100)")
    print(f"absolute {100 * s.absolute:.2f}%  normalized {100 * s.normalized:.2f}%  NAI {s.nai:.3f}")
    if args.csv:
        from spectral.io import atomic_write_bytes

        atomic_write_bytes(Path(args.csv), df.to_csv(index=False).encode())
        print(f"wrote {args.csv}")
    if skipped:
        _report_skipped(skipped)
        return 2
    return 0


def _report_skipped(skipped: dict[str, str]) -> None:
    """The tasks ``eval`` could not evaluate, by name and reason (stderr); the exit status is then 2."""
    print(f"not evaluated ({len(skipped)} task{'s' if len(skipped) != 1 else ''}; the others are in the results "
          "store):", file=sys.stderr)
    for task, why in skipped.items():
        print(f"  {task}: {why}", file=sys.stderr)


def cmd_sweep(args: argparse.Namespace) -> int:
    from spectral.cli import parse_params
    from spectral.progress import tqdm_progress
    from spectral.eval import sweeps

    alphas = _floats(args.alphas)

    def run(ev: Any, progress: Any) -> tuple[Any, list[str]]:
        if args.kind == "rank":
            return sweeps.rank_sweep(ev, _floats(args.fractions) or sweeps.RANK_FRACTIONS, progress=progress), \
                ["k_frac"]
        if args.kind == "alpha":
            return sweeps.alpha_sweep(ev, args.method, alphas or sweeps.ALPHAS, params=parse_params(args.param),
                                      progress=progress), ["method", "alpha", "params"]
        if args.kind == "common":
            return sweeps.common_frac_sweep(ev, _floats(args.common_fracs) or sweeps.COMMON_FRACS, alphas=alphas,
                                            select_split=args.select_split, progress=progress), \
                ["common_frac", "alpha"]
        if args.kind == "ablation":
            return sweeps.tsv_ablation(ev, alphas=alphas or sweeps.ALPHAS, select_split=args.select_split,
                                       progress=progress), ["variant", "low_rank", "interference_reduction", "alpha"]
        methods = args.methods.split(",") if args.methods else sweeps.METHODS
        return sweeps.method_table(ev, methods, alphas=alphas or sweeps.ALPHAS, select_split=args.select_split,
                                   progress=progress), ["method", "alpha"]

    with _executor(args) as executor, tqdm_progress(f"{args.kind} sweep") as progress:
        ev = open_evaluator(args, progress)
        df, by = _run_units(args, ev, executor, lambda e: run(e, progress if e is ev else None), progress)
        _print_nodes(executor)
    summary = sweeps.summarize_table(df, by)
    cols = [c for c in summary.columns if c in ("accuracy", "normalized", "finetuned", "zeroshot")]
    summary[cols] = (summary[cols] * 100).round(2)
    summary[["nai", "nai_of_mean"]] = summary[["nai", "nai_of_mean"]].round(3)
    print(f"{ev.pool.name} · {args.kind} sweep · {args.split} split")
    print(summary.to_string(index=False))
    if args.out:
        from spectral.io import atomic_write_bytes

        atomic_write_bytes(Path(args.out), df.to_csv(index=False).encode())
        print(f"wrote {args.out} ({len(df)} rows)")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from spectral.eval.results import ResultsStore

    store = ResultsStore(_store_path(args))
    if args.action == "count":
        print(f"{len(store)} stored runs in {store.path}")
    elif args.action == "prune":
        print(f"deleted {store.prune()} runs of other code versions from {store.path}")
    else:
        path = store.to_csv(args.out, method=args.method)
        print(f"wrote {path}", file=sys.stderr)
    return 0
