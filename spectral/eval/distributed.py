"""Sweeps, batch evaluations and cache builds as units on an :mod:`spectral.executor` (a Ray cluster).

A sweep function (:mod:`spectral.eval.sweeps`) asks its :class:`~spectral.eval.evaluate.Evaluator` for one
accuracy after another. :func:`run_sweep` first runs it against a *planning* evaluator that answers from the
results store and records every miss instead of computing it; the misses are sent to the executor as units
(:func:`evaluate_point`: pool spec, cache folder, method, parameters and split travel, nothing else), and the
driver stores each result as it arrives, with the node that computed it. Choices that depend on results (alpha
chosen on validation) make a second round. When nothing is missing the sweep function runs for real and reads
every number from the store. So a stopped sweep resumes with what is missing, and a finished one computes nothing.
"""
from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from spectral.eval.evaluate import Evaluator, Progress, _noop
from spectral.eval.results import Result, ResultKey
from spectral.executor import Executor, Unit

log = logging.getLogger(__name__)

T = TypeVar("T")

#: labels a worker knows how to recompute from (method, params, split)
REFERENCE_LABELS = ("zeroshot", "finetuned", "tsv_c")


# ---------------------------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------------------------
def open_pool_spec(spec: str, *, cache_dir: str | Path | None = None, trust_pickle: bool = False) -> Any:
    """A pool from its spec string, as the CLI and the dashboard resolve it: a registered name (also through
    ``$SPECTRAL_POOL_FACTORIES``), ``zoo-8`` / ``zoo-micro`` … (demo zoo in ``cache_dir``), a pool YAML, or a
    checkpoint folder."""
    from spectral.pool import registered_factory

    factory = registered_factory(spec)
    if factory is not None:
        return factory()
    if spec.startswith(("zoo-", "lm-zoo-", "lora-zoo-")):
        from spectral.zoo import open_zoo_pool

        return open_zoo_pool(spec, cache_dir=cache_dir)
    from spectral.checkpoints import open_pool

    return open_pool(spec, trust_pickle=trust_pickle)


class _CapturingEvaluator(Evaluator):
    """Computes every lookup (no store) and keeps the last (accuracies, counts) for the driver."""

    last: tuple[dict[str, float], dict[str, int]] = ({}, {})

    def lookup_result(self, method: str, params: Mapping[str, Any], compute: Callable[[int], Any],
                      split: str | None = None, subsample: int | None = None) -> Result:
        n = self._subsample(subsample)
        self.evaluations += 1
        t0 = time.perf_counter()
        self.last = compute(n)
        return Result(self.key(method, params, split, n), dict(self.last[0]), dict(self.last[1]),
                      time.perf_counter() - t0, time.time(), self.pool.name)


#: per worker process: evaluators by (pool spec, cache folder, trust_pickle, device), so a worker that runs
#: many points opens the pool, its data and its SVD cache once
_EVALUATORS: dict[tuple[str, str, bool, str, bool], _CapturingEvaluator] = {}


def _worker_evaluator(pool: str, cache_dir: str | None, trust_pickle: bool, device: str,
                      image_cache: bool = True) -> _CapturingEvaluator:
    key = (pool, cache_dir or "", trust_pickle, device, image_cache)
    if key not in _EVALUATORS:
        opened = open_pool_spec(pool, cache_dir=cache_dir, trust_pickle=trust_pickle)
        # a worker runs one point after another: each merge is evaluated with the memory to itself
        _EVALUATORS[key] = _CapturingEvaluator(opened, store=False, cache_dir=cache_dir, device=device,
                                               image_cache=image_cache, release_engine_memory=True)
    return _EVALUATORS[key]


def evaluate_point(*, pool: str, cache_dir: str | None, method: str, params: Mapping[str, Any], split: str,
                   device: str = "auto", trust_pickle: bool = False, subsample: int = 0,
                   image_cache: bool = True) -> tuple[dict[str, float], dict[str, int]]:
    """One sweep point on a worker: (accuracy per task, images per task) of ``method`` with ``params``, on the
    whole split (``subsample=0``) or the driver's stratified subsample of that many images per task."""
    ev = _worker_evaluator(pool, cache_dir, trust_pickle, device, image_cache)
    if method == "zeroshot":
        ev.zeroshot(split, subsample=subsample)
    elif method == "finetuned":
        ev.finetuned(split, subsample=subsample)
    elif method == "tsv_c":
        ev.compressed(str(params["task"]), float(params["k_frac"]), split=split, subsample=subsample)
    else:
        ev.merged(method, split=split, subsample=subsample, **dict(params))
    accs, counts = ev.last
    return dict(accs), dict(counts)


# ---------------------------------------------------------------------------------------------------------------
# driver side
# ---------------------------------------------------------------------------------------------------------------
class PendingAlpha(float):
    """An alpha chosen from results that are not computed yet (planning only): merges with it are not
    recorded, since the real choice is known only in the next round."""


class _Planner(Evaluator):
    """The driver's evaluator in planning mode: stored results are real, misses are recorded and answered NaN."""

    planning = True

    def __init__(self, ev: Evaluator) -> None:  # noqa: D107 - a view of ``ev``, sharing its store and pool
        self.__dict__.update(ev.__dict__)
        self.missing: dict[ResultKey, tuple[str, dict[str, Any], str, int]] = {}

    def pending_alpha(self, alphas: Any) -> PendingAlpha:
        return PendingAlpha(float(list(alphas)[0]))

    def _placeholder(self) -> dict[str, float]:
        return {t: math.nan for t in self.pool.task_names}

    def lookup_result(self, method: str, params: Mapping[str, Any], compute: Callable[[int], Any],
                      split: str | None = None, subsample: int | None = None) -> Result:
        found = self.cached_result(method, params, split, subsample)
        if found is not None:
            return found
        from spectral.methods import REGISTRY

        if method not in REFERENCE_LABELS and method not in REGISTRY:
            return super().lookup_result(method, params, compute, split, subsample)  # a custom label: driver only
        n = self._subsample(subsample)
        key = self.key(method, params, split, n)
        self.missing.setdefault(key, (method, dict(params), split or self.split, n))
        return Result(key, self._placeholder(), {}, 0.0, time.time(), self.pool.name)

    def merged(self, method: str, *, alpha: float | None = None, split: str | None = None,
               progress: Progress | None = None, **params: Any) -> dict[str, float]:
        if isinstance(alpha, PendingAlpha):
            return self._placeholder()
        return super().merged(method, alpha=alpha, split=split, progress=progress, **params)


def compute_missing(
    ev: Evaluator,
    fn: Callable[[Evaluator], Any],
    executor: Executor,
    *,
    pool_spec: str,
    trust_pickle: bool = False,
    progress: Progress | None = None,
    max_rounds: int = 10,
) -> int:
    """Run every evaluation ``fn(ev)`` needs that is not stored yet on ``executor``; the driver stores each
    result (with its node) as it arrives. Returns how many points were computed (0 for a finished sweep)."""
    progress = progress or _noop
    cache_dir = str(Path(ev.cache_dir).resolve()) if ev.cache_dir is not None else _default_cache()
    num_gpus = 1.0 if executor.gpus() > 0 else 0.0
    computed = 0
    for _ in range(max_rounds):
        planner = _Planner(ev)
        fn(planner)
        if not planner.missing:
            return computed
        units = [
            Unit(key=key, fn=evaluate_point, label=_label(method, params, split),
                 kwargs={"pool": pool_spec, "cache_dir": cache_dir, "method": method, "params": params,
                         "split": split, "device": "auto" if executor.is_distributed else str(ev.device),
                         "trust_pickle": trust_pickle, "subsample": n, "image_cache": ev.image_cache},
                 num_cpus=1.0, num_gpus=num_gpus)
            for key, (method, params, split, n) in planner.missing.items()
        ]
        log.info("%d points to compute on %s", len(units), executor.name)
        for done in executor.run(units, progress):
            accs, counts = done.value
            _store(ev, done.unit.key, accs, counts, done.seconds, done.node)
            computed += 1
    raise RuntimeError(f"sweep still missing points after {max_rounds} rounds")  # a sweep choosing forever


def run_sweep(
    ev: Evaluator,
    fn: Callable[[Evaluator], T],
    executor: Executor,
    *,
    pool_spec: str,
    trust_pickle: bool = False,
    progress: Progress | None = None,
) -> T:
    """``fn(ev)`` (a sweep, or any sequence of evaluator calls) with its missing points computed on
    ``executor`` first; a :class:`~spectral.executor.LocalExecutor` simply runs ``fn(ev)`` here."""
    if executor.is_distributed:
        compute_missing(ev, fn, executor, pool_spec=pool_spec, trust_pickle=trust_pickle, progress=progress)
    return fn(ev)


def _store(ev: Evaluator, key: ResultKey, accs: dict[str, float], counts: dict[str, int], seconds: float,
           node: str) -> None:
    if ev.store is None:
        ev._memory[key] = Result(key, dict(accs), dict(counts), seconds, time.time(), ev.pool.name, node)
    else:
        ev.store.put(key, accs, counts=counts, seconds=seconds, pool_name=ev.pool.name, node=node)
    ev.evaluations += 1


def _label(method: str, params: Mapping[str, Any], split: str) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{method}({inner}) {split}"


def _default_cache() -> str:
    from spectral.cache import default_cache_dir

    return str(Path(default_cache_dir()).resolve())


# ---------------------------------------------------------------------------------------------------------------
# SVD cache build
# ---------------------------------------------------------------------------------------------------------------
def build_svd_batch(*, pool: str, cache_dir: str | None, keys: list[str], matrix_filter: str = "default",
                    device: str = "auto", trust_pickle: bool = False, pool_cache_dir: str | None = None) -> int:
    """One unit of ``cache build``: the SVDs of ``keys`` (same-shape matrices) of every task, written to the
    shared content-keyed cache in ``cache_dir``; returns how many were computed (0 if another worker had them).
    ``pool_cache_dir``: where a demo zoo pool lives, if not in ``cache_dir``."""
    from spectral.engine import Engine
    from spectral.taskset import TaskSet

    opened = open_pool_spec(pool, cache_dir=pool_cache_dir or cache_dir, trust_pickle=trust_pickle)
    engine = Engine(TaskSet.from_pool(opened, matrix_filter=matrix_filter), cache_dir=cache_dir, device=device)
    return engine.build_cache(keys=keys)


def cache_build_units(engine: Any, *, pool_spec: str, cache_dir: str, pool_cache_dir: str | None = None,
                      matrix_filter: str = "default", trust_pickle: bool = False, num_gpus: float = 0.0,
                      max_keys: int = 8) -> list[Unit]:
    """The missing part of ``engine``'s SVD cache as units: same-shape matrix keys, at most ``max_keys`` per
    unit (one batched SVD on the worker)."""
    ts = engine.taskset
    by_shape: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for key in ts.matrix_keys:
        if any(not engine.cache.contains(ts.matrix_hash(t, key)) for t in range(ts.num_tasks)):
            by_shape[tuple(ts.base[key].shape)].append(key)
    units = []
    for shape, keys in by_shape.items():
        for start in range(0, len(keys), max_keys):
            batch = keys[start : start + max_keys]
            units.append(Unit(
                key=(shape, start), fn=build_svd_batch, label=f"SVD {'×'.join(map(str, shape))} × {len(batch)}",
                kwargs={"pool": pool_spec, "cache_dir": cache_dir, "pool_cache_dir": pool_cache_dir, "keys": batch,
                        "matrix_filter": matrix_filter, "device": "auto", "trust_pickle": trust_pickle},
                num_cpus=1.0, num_gpus=num_gpus))
    return units


def build_cache(engine: Any, executor: Executor, *, pool_spec: str, pool_cache_dir: str | None = None,
                matrix_filter: str = "default", trust_pickle: bool = False, progress: Progress | None = None,
                max_keys: int = 8) -> int:
    """``engine.build_cache()`` with its batches spread over ``executor``'s workers (which write the shared
    cache at ``engine.cache.root``); returns how many SVDs were computed."""
    units = cache_build_units(engine, pool_spec=pool_spec, cache_dir=str(Path(engine.cache.root).resolve()),
                              pool_cache_dir=pool_cache_dir, matrix_filter=matrix_filter, trust_pickle=trust_pickle,
                              num_gpus=1.0 if executor.gpus() > 0 else 0.0, max_keys=max_keys)
    return sum(int(done.value) for done in executor.run(units, progress))


# ---------------------------------------------------------------------------------------------------------------
# the dashboard's sweeps
# ---------------------------------------------------------------------------------------------------------------
def page_sweep_plan(kind: str, settings: Mapping[str, Any]) -> Callable[[Evaluator], Any] | None:
    """The evaluator calls behind a Sweeps-page figure (:mod:`spectral.figures.sweep_runner`, same result keys),
    for :func:`compute_missing` to run its missing points on a cluster first; None for a kind that runs locally."""
    if kind == "rank_sweep":
        def plan(ev: Evaluator) -> None:
            from spectral.eval import sweeps

            sweeps.rank_sweep(ev, [float(f) for f in settings["fractions"]])
    elif kind == "alpha_sweep":
        def plan(ev: Evaluator) -> None:
            ev.zeroshot(), ev.finetuned()
            params = settings.get("params") or {}
            for method in settings["methods"]:
                for alpha in settings["alphas"]:
                    ev.merged(method, **{**dict(params.get(method) or {}), "alpha": float(alpha)})
    elif kind == "common_frac_sweep":
        def plan(ev: Evaluator) -> None:
            ev.zeroshot(), ev.finetuned()
            alpha = float(settings["alpha"])
            ev.merged("iso_c", alpha=alpha)
            for frac in settings["fractions"]:
                ev.merged("iso_cts", alpha=alpha, common_frac=float(frac))
    else:
        return None
    return plan
