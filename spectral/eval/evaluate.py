"""Accuracy of any image-tower state dict on the tasks of a model pool, and the cached evaluator on top.

- :func:`task_accuracies` is the pure computation: load the canonical ``visual.*`` state dict into the pool's
  image tower (eval mode, ``torch.inference_mode``), stream each task's test images through it batch by batch
  (:mod:`spectral.eval.stream`: worker processes, the preprocessed-image cache) and classify them with the task's
  frozen head. Memory does not grow with the test set. :func:`task_accuracies_in_memory` is the former way
  (every split held as float32 and concatenated), kept for ``bench/scale.py`` and the equality tests.
- :class:`Evaluator` ties a pool, the merge :class:`~spectral.engine.Engine` and the :class:`ResultsStore`
  together: ``zeroshot()``, ``finetuned()``, ``merged(method, alpha=…, **params)``, ``compressed(task, k_frac)``
  return per-task accuracies and never evaluate the same (pool, method, params, split, code) twice.
- :func:`summarize` gives the papers' aggregate numbers: absolute accuracy (mean over tasks), normalised accuracy
  (TSV Tab. 1-2, Iso Tab. 1) and NAI (Iso Eq. 4), via :mod:`spectral.metrics.accuracy`.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from spectral.eval.results import Result, ResultKey, ResultsStore, code_version, pool_fingerprint
from spectral.linalg import resolve_device
from spectral.pool import ModelPool, TaskScores, strip_visual_prefix

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def _noop(i: int, n: int, text: str) -> None:
    return None


# ---------------------------------------------------------------------------------------------------------------
# pure evaluation
# ---------------------------------------------------------------------------------------------------------------
def eval_tensors(pool: ModelPool, task: str, split: str = "test") -> tuple[Tensor, Tensor]:
    """A split as (preprocessed images (N, 3, H, W), labels (N,)), stacked once and kept on the pool object."""
    store: dict[tuple[str, str], tuple[Tensor, Tensor]] = pool.__dict__.setdefault("_spectral_eval_data", {})
    key = (task, split)
    if key not in store:
        ds = pool.dataset(task, split)  # type: ignore[arg-type]
        if hasattr(ds, "tensors") and callable(ds.tensors):
            x, y = ds.tensors()
        else:
            loader = torch.utils.data.DataLoader(ds, batch_size=512, shuffle=False)
            xs, ys = zip(*[(bx, torch.as_tensor(by)) for bx, by in loader])
            x, y = torch.cat(xs), torch.cat(ys)
        store[key] = (x.float().contiguous(), y.long().contiguous())
    return store[key]


def _encoder(pool: ModelPool, device: torch.device) -> nn.Module:
    from spectral.eval.stream import _encoder as encoder

    return encoder(pool, device)


def task_accuracies(
    pool: ModelPool,
    state_dict: Mapping[str, Tensor],
    *,
    tasks: Sequence[str] | None = None,
    split: str = "test",
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    progress: Progress | None = None,
    subsample: int | None = None,
    cache_dir: str | Path | None = None,
    image_cache: bool = True,
) -> tuple[dict[str, float], dict[str, int]]:
    """(score per task, number of examples per task) of a canonical body state dict on ``split`` (or a stratified
    ``subsample`` of each task's split), streamed by the pool's family (:meth:`ModelPool.task_scores`): accuracy of
    an image tower, Matthews correlation or accuracy of a language model."""
    return pool.task_scores(state_dict, tasks=tasks, split=split, device=device, batch_size=batch_size,
                            progress=progress, subsample=subsample, cache_dir=cache_dir, image_cache=image_cache)


def task_accuracies_in_memory(
    pool: ModelPool,
    state_dict: Mapping[str, Tensor],
    *,
    tasks: Sequence[str] | None = None,
    split: str = "test",
    device: str | torch.device = "auto",
    batch_size: int = 1024,
    progress: Progress | None = None,
) -> tuple[dict[str, float], dict[str, int]]:
    """The former evaluation: every split held as float32 (:func:`eval_tensors`) and concatenated; memory grows
    by ~1.2 MB per 224-px test image. Kept as the reference of ``bench/scale.py`` and the equality tests."""
    progress = progress or _noop
    tasks = list(tasks) if tasks is not None else list(pool.task_names)
    dev = resolve_device(device)
    encoder = _encoder(pool, dev)
    encoder.load_state_dict(strip_visual_prefix(dict(state_dict)), strict=True)
    encoder.eval()
    data = [eval_tensors(pool, t, split) for t in tasks]
    images = torch.cat([x for x, _ in data]) if len(data) > 1 else data[0][0]
    feats = []
    with torch.inference_mode():
        for i, start in enumerate(range(0, images.shape[0], batch_size)):
            feats.append(encoder(images[start : start + batch_size].to(dev)).float())
            progress(min(images.shape[0], start + batch_size), images.shape[0], "embedding test images")
        features = torch.cat(feats)
        accs, counts = {}, {}
        offset = 0
        for t, (_, y) in zip(tasks, data):
            f = features[offset : offset + y.shape[0]]
            offset += y.shape[0]
            pred = (f @ pool.head(t).to(dev, f.dtype).T).argmax(1).cpu()
            accs[t] = int((pred == y).sum()) / y.numel() if y.numel() else math.nan
            counts[t] = int(y.numel())
    return accs, counts


# ---------------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """Aggregate accuracy of one model over the tasks (fractions in [0, 1])."""

    per_task: dict[str, float]
    absolute: float
    normalized: float = math.nan
    nai: float = math.nan
    normalized_per_task: dict[str, float] = field(default_factory=dict)
    nai_per_task: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, float]:
        return {"absolute": self.absolute, "normalized": self.normalized, "nai": self.nai}


def summarize(
    merged: Mapping[str, float],
    finetuned: Mapping[str, float] | None = None,
    zeroshot: Mapping[str, float] | None = None,
) -> Summary:
    """Absolute accuracy (mean), normalised accuracy (mean of acc/acc_ft) and NAI (Iso Eq. 4, mean per task)."""
    from spectral.metrics.accuracy import nai, normalised_accuracy

    per_task = {t: float(a) for t, a in merged.items()}
    absolute = sum(per_task.values()) / len(per_task) if per_task else math.nan
    norm = nai_s = math.nan
    norm_pt: dict[str, float] = {}
    nai_pt: dict[str, float] = {}
    if finetuned is not None and per_task:
        s = normalised_accuracy(per_task, finetuned)
        norm, norm_pt = s.mean, dict(s.per_task)
        if zeroshot is not None:
            s2 = nai(per_task, finetuned, zeroshot)
            nai_s, nai_pt = s2.mean, dict(s2.per_task)
    return Summary(per_task, absolute, norm, nai_s, norm_pt, nai_pt)


# ---------------------------------------------------------------------------------------------------------------
# cached evaluator
# ---------------------------------------------------------------------------------------------------------------
class Evaluator:
    """Per-task accuracies of a pool's zero-shot, fine-tuned, merged and compressed models, through the store.

    ``store``: a :class:`ResultsStore`, a path to one, ``None`` for the default ``<cache>/results.sqlite``, or
    ``False`` to keep results in memory only. ``engine``: a :class:`spectral.engine.Engine` over this pool's
    TaskSet (built lazily when needed). ``version`` overrides :func:`code_version` (tests). ``subsample``: evaluate
    a fixed, seeded, class-stratified subsample of that many images per task instead of the whole split (a live
    estimate, stored as such); every model method also takes ``subsample=`` per call. ``image_cache``: keep
    preprocessed uint8 pixels of image-file data sets under ``<cache>/images/``.

    ``release_engine_memory`` (the CLI): a merge is evaluated with the memory to itself. Before evaluating it, the
    engine's in-memory factors and derived layer data are dropped and the heap handed back
    (:meth:`spectral.engine.Engine.release_memory`), and an engine built here keeps no factors in memory at all
    (each merge reads them from the disk cache, once per layer). ``keep_merges=False`` drops the remembered merges
    too; keep them where several alphas of one merge follow (sweeps), since an alpha change then costs one
    multiply-add per tensor. (``bench/eval_command.py``: with this and the release of checkpoint pages, the whole
    ``eval --method tsv_m`` command on ViT-B/32 × 8 peaks at 2.0 GB instead of 8.6 GB.)
    """

    def __init__(
        self,
        pool: ModelPool,
        *,
        engine: Any = None,
        store: ResultsStore | str | Path | None | bool = None,
        split: str = "test",
        device: str | torch.device = "auto",
        cache_dir: str | Path | None = None,
        version: str | None = None,
        batch_size: int = 1024,
        subsample: int | None = None,
        image_cache: bool = True,
        release_engine_memory: bool = False,
        keep_merges: bool = True,
        skip_missing_data: bool = False,
    ) -> None:
        self.pool = pool
        #: evaluate only the tasks whose data opens (see :attr:`tasks`, :attr:`unavailable`)
        self.skip_missing_data = skip_missing_data
        self._availability: dict[str, tuple[list[str], dict[str, str]]] = {}
        #: default subsample size per task (None: the whole split); each call may override it
        self.subsample = int(subsample) if subsample else None
        self.image_cache = image_cache
        self.release_engine_memory = release_engine_memory
        self.keep_merges = keep_merges
        self._engine = engine
        if store is False:
            self.store: ResultsStore | None = None
        elif isinstance(store, ResultsStore):
            self.store = store
        else:
            self.store = ResultsStore(store if store not in (None, True) else None)  # type: ignore[arg-type]
        self._memory: dict[ResultKey, Result] = {}
        self.split = split
        self.device = resolve_device(device)
        self.cache_dir = cache_dir
        self.version = version if version is not None else code_version()
        self.batch_size = batch_size
        self.pool_key = pool_fingerprint(pool)
        #: how many evaluations actually ran (cache misses); tests read this
        self.evaluations = 0

    # -- plumbing ---------------------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        if self._engine is None:
            from spectral.engine import Engine
            from spectral.taskset import TaskSet

            budget = {"memory_bytes": 0} if self.release_engine_memory else {}
            self._engine = Engine(TaskSet.from_pool(self.pool), cache_dir=self.cache_dir, device=self.device,
                                  **budget)
        return self._engine

    def _before_evaluating(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """``state`` (a merge the engine just made), after freeing the engine's memory if ``release_engine_memory``."""
        if self.release_engine_memory:
            self.engine.release_memory(keep_merges=self.keep_merges)
        return state

    def _subsample(self, subsample: int | None) -> int:
        """The effective subsample size of a call: 0 for the whole split (also when no task split is larger)."""
        n = self.subsample if subsample is None else subsample
        if not n:
            return 0
        return int(n) if int(n) < self.largest_split() else 0

    def _available(self, split: str | None = None) -> tuple[list[str], dict[str, str]]:
        """(tasks to evaluate, {task: why not}) on ``split``: with ``skip_missing_data``, a task whose data does
        not open, or whose classes are not its head's, is left out and reported; else every task."""
        split = split or self.split
        if not self.skip_missing_data:
            return list(self.pool.task_names), {}
        if split not in self._availability:
            from spectral.errors import SpectralError

            ok, why = [], {}
            for t in self.pool.task_names:
                try:
                    ds = self.pool.dataset(t, split)  # type: ignore[arg-type]
                    classes = getattr(ds, "classes", None)
                    n_classes = len(classes) if classes is not None else getattr(ds, "num_labels", None)
                    if n_classes is not None and int(n_classes) != self.pool.num_classes(t):
                        raise SpectralError(f"task {t!r}: its data has {int(n_classes)} classes, its head has "
                                            f"{self.pool.num_classes(t)}")
                    ok.append(t)
                except (SpectralError, OSError) as exc:
                    why[t] = str(exc)
                    log.warning("not evaluating task %s: %s", t, exc)
            self._availability[split] = (ok, why)
        return self._availability[split]

    @property
    def tasks(self) -> list[str]:
        """The tasks evaluated on :attr:`split` (all of them unless ``skip_missing_data`` left some out)."""
        return list(self._available()[0])

    @property
    def unavailable(self) -> dict[str, str]:
        """Tasks left out on :attr:`split` because their data could not be used, with the reason."""
        return dict(self._available()[1])

    def largest_split(self, split: str | None = None) -> int:
        """Number of images of the largest task split (read from the data sets' lengths; memoised)."""
        split = split or self.split
        memo = self.__dict__.setdefault("_split_sizes", {})
        if split not in memo:
            memo[split] = max((len(self.pool.dataset(t, split)) for t in self._available(split)[0]),  # type: ignore[arg-type]
                              default=0)
        return memo[split]

    def key(self, method: str, params: Mapping[str, Any], split: str | None = None,
            subsample: int | None = 0) -> ResultKey:
        return ResultKey.make(self.pool_key, method, params, split or self.split, self.version,
                              subsample=subsample or 0)

    def cached(self, method: str, params: Mapping[str, Any], split: str | None = None,
               subsample: int | None = None) -> dict[str, float] | None:
        """The stored accuracies for a key, without computing anything."""
        found = self.cached_result(method, params, split, subsample)
        return dict(found.accuracies) if found is not None else None

    def cached_result(self, method: str, params: Mapping[str, Any], split: str | None = None,
                      subsample: int | None = None) -> Result | None:
        """The stored :class:`Result` (accuracies, images per task, subsample) for a key, or None."""
        key = self.key(method, params, split, self._subsample(subsample))
        if self.store is None:
            return self._memory.get(key)
        return self.store.get(key)

    def lookup_result(
        self, method: str, params: Mapping[str, Any], compute: Callable[[int], tuple[dict[str, float], dict[str, int]]],
        split: str | None = None, subsample: int | None = None,
    ) -> Result:
        """The stored :class:`Result` for (method, params, split, subsample), or ``compute(subsample)``'s, stored."""
        n = self._subsample(subsample)
        key = self.key(method, params, split, n)

        def run() -> tuple[dict[str, float], dict[str, int]]:
            self.evaluations += 1
            log.debug("evaluating %s %s on %s%s (%s)", method, key.params, key.split,
                      f" (subsample of {n} per task)" if n else "", self.pool.name)
            return compute(n)

        if self.store is None:
            if key not in self._memory:
                t0 = time.perf_counter()
                out = run()
                accs, counts = out
                self._memory[key] = Result(key, dict(accs), dict(counts), time.perf_counter() - t0, time.time(),
                                           self.pool.name, bounds=dict(getattr(out, "bounds", {})),
                                           losses=dict(getattr(out, "losses", {})))
            return self._memory[key]
        return self.store.get_or_compute(key, run, pool_name=self.pool.name)

    def lookup(
        self, method: str, params: Mapping[str, Any], compute: Callable[..., tuple[dict[str, float], dict[str, int]]],
        split: str | None = None, subsample: int | None = None,
    ) -> dict[str, float]:
        """Stored accuracies for (method, params, split, subsample), or ``compute()``'s, stored. ``compute`` takes
        the effective subsample size (0: whole split) or, for callers of the former API, nothing."""
        import inspect

        takes_n = bool(inspect.signature(compute).parameters)
        fn = compute if takes_n else (lambda n: compute())
        return dict(self.lookup_result(method, params, fn, split, subsample).accuracies)

    def accuracies(self, state_dict: Mapping[str, Tensor], tasks: Sequence[str] | None = None,
                   split: str | None = None, subsample: int | None = None,
                   progress: Progress | None = None) -> tuple[dict[str, float], dict[str, int]]:
        """Uncached: evaluate a state dict now (on the whole split unless ``subsample`` is given)."""
        if tasks is None and self.skip_missing_data:
            tasks = self._available(split)[0]
        return task_accuracies(self.pool, state_dict, tasks=tasks, split=split or self.split, device=self.device,
                               batch_size=self.batch_size, subsample=subsample or None, cache_dir=self.cache_dir,
                               image_cache=self.image_cache, progress=progress)

    # -- the models ---------------------------------------------------------------------------------------------
    def zeroshot(self, split: str | None = None, *, subsample: int | None = None,
                 progress: Progress | None = None) -> dict[str, float]:
        """The pre-trained image tower with each task's zero-shot head."""
        return self.lookup("zeroshot", {}, lambda n: self.accuracies(self.pool.base_state_dict(), split=split,
                                                                     subsample=n, progress=progress),
                           split, subsample)

    def finetuned(self, split: str | None = None, *, subsample: int | None = None,
                  progress: Progress | None = None) -> dict[str, float]:
        """Each task's fine-tuned image tower on its own task (the individual upper bound)."""
        def compute(n: int) -> tuple[dict[str, float], dict[str, int]]:
            accs, counts, bounds, losses = {}, {}, {}, {}
            for t in self._available(split)[0]:
                out = self.accuracies(self.pool.finetuned_state_dict(t), [t], split, n, progress)
                accs.update(out[0])
                counts.update(out[1])
                bounds.update(getattr(out, "bounds", {}))
                losses.update(getattr(out, "losses", {}))
            return TaskScores(accs, counts, bounds, losses)

        return self.lookup("finetuned", {}, compute, split, subsample)

    def resolve(self, method: str, alpha: float | None = None, **params: Any) -> dict[str, Any]:
        """The fully resolved parameters of a merge (defaults filled in, alpha included when the method has one)."""
        from spectral.methods import get_method

        m = get_method(method)
        given = dict(params)
        if alpha is not None and "alpha" in m.param_names:
            given["alpha"] = alpha
        return dict(m.resolve_params(given, len(self.pool.task_names)))

    def merged(self, method: str, *, alpha: float | None = None, split: str | None = None,
               progress: Progress | None = None, subsample: int | None = None, **params: Any) -> dict[str, float]:
        """Accuracies of the model merged by ``method`` (any :func:`spectral.list_methods` name)."""
        return dict(self.merged_result(method, alpha=alpha, split=split, progress=progress, subsample=subsample,
                                       **params).accuracies)

    def merged_result(self, method: str, *, alpha: float | None = None, split: str | None = None,
                      progress: Progress | None = None, subsample: int | None = None, **params: Any) -> Result:
        """:meth:`merged` as a :class:`Result` (with images per task and whether it is a subsample estimate)."""
        resolved = self.resolve(method, alpha, **params)

        def compute(n: int) -> tuple[dict[str, float], dict[str, int]]:
            state = self._before_evaluating(self.engine.merge(method, progress=progress, **resolved))
            return self.accuracies(state, split=split, subsample=n, progress=progress)

        return self.lookup_result(method, resolved, compute, split, subsample)

    def reference_result(self, which: str, split: str | None = None, *, subsample: int | None = None,
                         progress: Progress | None = None) -> Result:
        """``"zeroshot"`` or ``"finetuned"`` as a :class:`Result`."""
        getattr(self, which)(split, subsample=subsample, progress=progress)
        found = self.cached_result(which, {}, split, subsample)
        assert found is not None
        return found

    def compressed(self, task: str, k_frac: float, *, split: str | None = None,
                   subsample: int | None = None) -> float:
        """Accuracy of TSV-C (TSV Eq. 7) of ``task`` at rank fraction ``k_frac``, on its own task."""
        params = {"k_frac": float(k_frac), "task": task}

        def compute(n: int) -> tuple[dict[str, float], dict[str, int]]:
            return self.accuracies(self._before_evaluating(self.engine.compress(task, k_frac=k_frac)), [task], split, n)

        return self.lookup("tsv_c", params, compute, split, subsample)[task]

    def state_dict(
        self,
        label: str,
        params: Mapping[str, Any],
        state: Mapping[str, Tensor] | Callable[[], Mapping[str, Tensor]],
        *,
        tasks: Sequence[str] | None = None,
        split: str | None = None,
        subsample: int | None = None,
    ) -> dict[str, float]:
        """Accuracies of any state dict (or a callable producing it), cached under (``label``, ``params``): the
        caller guarantees that the label and parameters identify the weights (e.g. AdaMerging's coefficients)."""
        def compute(n: int) -> tuple[dict[str, float], dict[str, int]]:
            sd = state() if callable(state) else state
            return self.accuracies(sd, tasks, split, n)

        return self.lookup(label, dict(params), compute, split, subsample)

    def summary(self, accuracies: Mapping[str, float], split: str | None = None) -> Summary:
        """Absolute, normalised accuracy and NAI of per-task accuracies against this pool's references."""
        ft = self.finetuned(split)
        zs = self.zeroshot(split)
        return summarize({t: accuracies[t] for t in accuracies}, ft, zs)
