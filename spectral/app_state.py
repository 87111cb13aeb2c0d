"""Session glue for the dashboard that is not Streamlit-specific: workspaces, background jobs, memoised results.

A :class:`Workspace` is one model pool opened on one device: the pool, its :class:`~spectral.taskset.TaskSet`, its
:class:`~spectral.engine.Engine`, evaluation of state dicts on every task, and a memo of computed results (figure
data, accuracies). The app keeps one workspace per (pool, device) in ``st.cache_resource``, so every browser session
shares it; everything here is thread-safe.

Long work runs in a :class:`Job` (a background thread with a ``progress(i, n, text)`` callback): a page polls the
job to draw a progress bar, and if the user switches pages meanwhile the job keeps running and its result lands in
the memo, where the next visit finds it. Two sessions asking for the same result share one job.

Heavy jobs (cache builds, evaluations, sweeps) take a slot of the server's one bounded queue
(:func:`spectral.serving.job_queue`, ``$SPECTRAL_MAX_JOBS``). A job records the sessions waiting for it; when all of
them have closed it is cancelled (see :mod:`spectral.serving`). A workspace opened with pool roots
(``$SPECTRAL_POOL_ROOTS``, :mod:`spectral.roots`) refuses every path outside them before reading it.
"""
from __future__ import annotations

import contextvars
import importlib
import logging
import os
import re
import threading
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Hashable, Iterator, Mapping, TypeVar

from torch import Tensor

from spectral.engine import Engine
from spectral.errors import SpectralError
from spectral.figures.source import freeze  # noqa: F401 - memo keys of settings; re-exported for the pages
from spectral.pool import ModelPool
from spectral.roots import OutsidePoolRootsError, bounded_reads, check_path, check_paths, paths_in
from spectral.serving import JobCancelled, JobQueue, Waiters, holding, job_queue, trace
from spectral.taskset import TaskSet

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int, int, str], None]

#: the demo zoo's pools, offered first in the pool selector
ZOO_POOLS: tuple[str, ...] = ("zoo-8", "zoo-14", "zoo-20", "lm-zoo-7", "lora-zoo-8")


class PoolError(SpectralError):
    """A pool spec cannot be opened (unknown name, unreadable YAML or folder, zoo not built)."""


# -- pools ---------------------------------------------------------------------------------------------------------
# The registry of named pools lives beside ModelPool (spectral.pool), so that headless code (Ray workers, the CLI)
# opens registered pools without importing the dashboard's state.
from spectral.pool import _load_env_factories, register_pool, registered_factory, registered_pools  # noqa: E402,F401


_ZOO_SPEC = re.compile(r"^zoo-(\d+)(?:-s(\d+))?$")
_LM_ZOO_SPEC = re.compile(r"^lm-zoo-(7|micro)$")
_LORA_ZOO_SPEC = re.compile(r"^lora-zoo-(\d+|micro)$")


def is_zoo_spec(spec: str) -> bool:
    """A demo zoo: the CLIP zoos (``zoo-8``, ``zoo-14``, ``zoo-20``) or the language zoo (``lm-zoo-7``)."""
    return bool(_ZOO_SPEC.match(spec.strip()) or _LM_ZOO_SPEC.match(spec.strip())
                or _LORA_ZOO_SPEC.match(spec.strip()))


def zoo_status(spec: str) -> str:
    """"built", "missing" or "unavailable" (no zoo package in this installation) for a demo-zoo pool spec."""
    lora = _LORA_ZOO_SPEC.match(spec.strip())
    if lora is not None:  # LoRA adapters on a CLIP zoo: built when the zoo and its adapters are
        if lora.group(1) == "micro":
            return "missing"
        from spectral.zoo.build import ZooConfig, zoo_root

        built = zoo_status(f"zoo-{lora.group(1)}") == "built"
        adapters = zoo_root(None, ZooConfig(), 0) / "lora-adapters" / "manifest.json"
        return "built" if built and adapters.is_file() else "missing"
    lm = _LM_ZOO_SPEC.match(spec.strip())
    if lm is not None:
        from spectral.zoo.lm import is_lm_zoo_built, lm_zoo_root

        return "built" if is_lm_zoo_built(lm_zoo_root(size="full" if lm.group(1) == "7" else "micro")) else "missing"
    match = _ZOO_SPEC.match(spec.strip())
    if match is None:
        return "unavailable"
    try:
        from spectral.zoo import is_built
    except ImportError:
        return "unavailable"
    try:
        return "built" if is_built(int(match.group(1)), seed=int(match.group(2) or 0)) else "missing"
    except Exception:  # noqa: BLE001 - a broken manifest or unknown suite reads as "missing": opening explains
        log.debug("checking the demo zoo %s", spec, exc_info=True)
        return "missing"


def open_pool(spec: str, *, trust_pickle: bool = False, progress: Progress | None = None,
              roots: tuple[Path, ...] | None = None) -> ModelPool:
    """Open a pool spec: a registered name, a demo zoo (``zoo-8``/``zoo-14``/``zoo-20``: built on first use, with
    ``progress``), a pool YAML or a checkpoint folder. Errors are :class:`PoolError` naming the spec.

    ``roots`` (the dashboard's pool roots; None: unbounded, as on the command line): a YAML or folder outside them,
    or a pool that names a file outside them, raises :class:`~spectral.roots.OutsidePoolRootsError` before any
    checkpoint is read. Registered names and the demo zoo are the server's own and not bounded."""
    spec = spec.strip()
    if not spec:
        raise PoolError("no pool given: choose a demo zoo or enter a pool YAML / checkpoint folder")
    factory = registered_factory(spec)
    if factory is not None:
        return factory()
    try:
        if is_zoo_spec(spec):
            try:
                from spectral.zoo import open_zoo_pool
            except ImportError as err:
                raise PoolError(f"the demo zoo {spec!r} is not part of this installation") from err
            return open_zoo_pool(spec, build=True, progress=progress)
        from spectral.cli import open_pool as cli_open_pool

        if roots is None:
            return cli_open_pool(spec, trust_pickle=trust_pickle)
        # open the checked, resolved path (not the text again: a link swapped in between is not followed)
        pool = cli_open_pool(str(check_path(spec, roots, what="pool")), trust_pickle=trust_pickle)
        check_paths(paths_in(getattr(pool, "spec", None)), roots)  # lazy pools: nothing read yet
        return pool
    except SpectralError as err:
        if isinstance(err, (PoolError, OutsidePoolRootsError)) or spec in str(err):
            raise
        raise PoolError(f"cannot open pool {spec!r}: {err}") from err
    except (FileNotFoundError, ImportError, OSError, ValueError, KeyError, TypeError) as err:
        raise PoolError(f"cannot open pool {spec!r}: {err}") from err


# -- threads -------------------------------------------------------------------------------------------------------
def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads for an interactive process and return the count.

    ``threads``, else ``$SPECTRAL_TORCH_THREADS``, else half the cores (at most 4, at least 1). The dashboard's
    work is many small operations (one layer's merge, a 128-wide zoo model) from several sessions' threads at once;
    with as many OpenMP threads as cores, threads spin-wait on each other and on other processes: on a shared
    2-core machine one slider update of the Spectra page took 5 s with 2 threads and 20 ms with 1.
    """
    if threads is None:
        env = os.environ.get("SPECTRAL_TORCH_THREADS", "").strip()
        threads = int(env) if env else min(4, max(1, (os.cpu_count() or 2) // 2))
    import torch

    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


# -- jobs ----------------------------------------------------------------------------------------------------------
class Job(Generic[T]):
    """Work running in a background thread, with progress readable from any thread."""

    def __init__(self, key: Hashable, label: str = "") -> None:
        self.key = key
        self.label = label
        self.fraction = 0.0
        self.text = "starting…"
        self.started = time.perf_counter()
        self.finished: float | None = None
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        self.traceback = ""
        #: sessions waiting for the result (a job all of whose sessions closed is cancelled)
        self.waiters = Waiters()
        #: the queue this job waits in or runs under (heavy jobs), for "jobs ahead of yours"
        self.queue: JobQueue | None = None
        self._cancel = threading.Event()
        self._checked = 0.0
        #: 0: a session waits on screen for it; 1: background work that yields its queue slot to such jobs
        self.priority = 0

    @classmethod
    def completed(cls, key: Hashable, value: T) -> "Job[T]":
        job: Job[T] = cls(key)
        job._result, job.fraction, job.text = value, 1.0, "done"
        job.finished = job.started
        job._done.set()
        return job

    def progress(self, i: int, n: int, text: str) -> None:
        """The work's progress callback; raises :class:`JobCancelled` once the job is cancelled (so a running job
        stops at its next report)."""
        self.fraction = min(1.0, max(0.0, i / n)) if n else 0.0
        self.text = text
        now = time.monotonic()
        if now - self._checked >= 0.5:  # the session probe takes a lock in the runtime: at most twice a second
            self._checked = now
            if self.should_cancel():
                raise JobCancelled(f"job {self.label or self.key!r} cancelled: no session waits for it")
        if self.queue is not None and self.priority > 0:
            self.queue.yield_slot(self)

    def attach(self, session_id: str | None) -> "Job[T]":
        """Record a session waiting for this job (None: nothing recorded)."""
        if not self.done:
            self.waiters.add(session_id)
        return self

    def detach(self, session_id: str | None) -> None:
        """A session stopped waiting (it asked for other settings): with no session left, the job is cancelled, in
        the queue at once or at its next progress report, and its slot goes to work somebody still waits for."""
        if self.done:
            return
        self.waiters.remove(session_id)
        if self.waiters.all_gone():
            trace("job_abandoned", job=self.label, key=_short(self.key))
            self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """Cancelled, though perhaps still running up to its next progress report."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop: it leaves the queue, or stops at its next progress report."""
        self._cancel.set()

    def should_cancel(self) -> bool:
        if not self._cancel.is_set() and self.waiters.all_gone():
            log.info("cancelling job %s: every session waiting for it has closed", self.label or self.key)
            self._cancel.set()
        return self._cancel.is_set()

    @property
    def cancelled(self) -> bool:
        return self._done.is_set() and isinstance(self._error, JobCancelled)

    def ahead(self) -> int | None:
        """Jobs ahead of this one in the server's queue (0 while it runs; None: not queued, or not heavy)."""
        return None if self.queue is None or self.done else self.queue.ahead_of(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        return self._done.is_set() and self._error is not None

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> T:
        """The value, or the job's exception re-raised; blocks until done (or ``timeout``: TimeoutError)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.label or self.key!r} still running")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def _run(self, fn: Callable[[Progress], T], on_success: Callable[[T], None] | None) -> None:
        trace("job_run", job=self.label, key=_short(self.key), priority=self.priority,
              waited_s=round(time.perf_counter() - self.started, 3))
        cpu0, ran0, process0, queue0 = time.thread_time(), time.perf_counter(), time.process_time(), _runqueue_s()
        try:
            value = fn(self.progress)
            if on_success is not None:
                on_success(value)
            self._result = value
            self.fraction, self.text = 1.0, "done"
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits
            self._error = err
            self.traceback = traceback.format_exc()
            if isinstance(err, JobCancelled):
                self.text = "cancelled"
                log.info("job %s cancelled", self.label or self.key)
            else:
                log.warning("job %s failed: %s", self.label or self.key, err)
        finally:
            self.finished = time.perf_counter()
            trace("job_done", job=self.label, key=_short(self.key), priority=self.priority,
                  total_s=round(self.finished - self.started, 3), ran_s=round(self.finished - ran0, 3),
                  cpu_s=round(time.thread_time() - cpu0, 3), process_cpu_s=round(time.process_time() - process0, 3),
                  runqueue_s=round(_runqueue_s() - queue0, 3),
                  error=type(self._error).__name__
                  if self._error is not None else None)
            self._done.set()


def _runqueue_s() -> float:
    """Seconds this thread has waited, runnable, for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _short(key: Hashable) -> str:
    """A memo key, short enough for a trace line."""
    import hashlib

    return hashlib.blake2s(repr(key).encode(), digest_size=4).hexdigest()


class JobRunner:
    """Starts jobs by key; while one runs, asking for the same key returns it (two sessions share one job)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Job[Any]] = {}

    def submit(self, key: Hashable, fn: Callable[[Progress], T], *, label: str = "",
               on_success: Callable[[T], None] | None = None, heavy: bool = False,
               session: str | None = None, background: bool = False) -> Job[T]:
        """The running job of ``key`` (``session`` recorded as one more waiter), else a new one in a background
        thread. ``heavy``: it waits for a slot of the server's job queue first. ``background``: no session waits
        on screen for it, so it yields its slot to jobs that one does (a session asking for it in the foreground
        later makes it interactive). The thread runs in a copy of the caller's context (so
        :func:`spectral.roots.bounded_reads` carries over)."""
        with self._lock:
            job = self._running.get(key)
            # a job cancelled but still winding down is not reused: the new asker gets a fresh one
            if job is not None and not job.done and not job.cancel_requested:
                if not background:
                    job.priority = 0
                return job.attach(session)
            job = Job(key, label)
            job.priority = 1 if background else 0
            trace("job_submit", job=label, key=_short(key), priority=job.priority, heavy=heavy, session=session)
            job.attach(session)
            if heavy:
                job.queue = job_queue()
            self._running[key] = job

        def target() -> None:
            try:
                if job.queue is not None:
                    with job.queue.slot(job):
                        job._run(fn, on_success)
                else:
                    job._run(fn, on_success)
            except JobCancelled as err:  # left the queue without running
                job._error, job.text = err, "cancelled"
                job.finished = time.perf_counter()
                job._done.set()
            finally:
                with self._lock:
                    if self._running.get(key) is job:
                        del self._running[key]

        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(target,), name=f"spectral-job-{label or key}", daemon=True).start()
        return job

    def running(self) -> list[Job[Any]]:
        with self._lock:
            return [j for j in self._running.values() if not j.done]

    def get(self, key: Hashable) -> Job[Any] | None:
        with self._lock:
            return self._running.get(key)


class Memo:
    """A thread-safe LRU of computed results keyed by hashable tuples."""

    def __init__(self, max_entries: int = 512) -> None:
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return default

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# -- workspace -----------------------------------------------------------------------------------------------------
@dataclass
class Workspace:
    """One pool on one device, shared by every session that selects it."""

    spec: str
    device: str = "auto"
    cache_dir: str | None = None
    trust_pickle: bool = False
    #: the split accuracies are measured on
    eval_split: str = "test"
    pool: ModelPool | None = None
    taskset: TaskSet | None = None
    engine: Engine | None = None
    evaluator: Any = None
    memo: Memo = field(default_factory=Memo)
    jobs: JobRunner = field(default_factory=JobRunner)
    #: pool roots (:mod:`spectral.roots`): the dashboard opens paths inside them only; None: unbounded (CLI)
    roots: tuple[Path, ...] | None = None

    def __post_init__(self) -> None:
        self._open_lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Event] = {}
        self._inflight_lock = threading.Lock()

    # opening ---------------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.engine is not None

    def open(self, progress: Progress | None = None) -> "Workspace":
        """Open the pool (building the demo zoo first if it is missing) and set up its TaskSet, Engine and
        Evaluator (idempotent; safe from several threads)."""
        with self._open_lock:
            if self.engine is not None:
                return self
            progress = progress or (lambda i, n, t: None)
            progress(0, 1, f"opening {self.spec}")
            with bounded_reads(self.roots):
                pool = self.pool if self.pool is not None else open_pool(
                    self.spec, trust_pickle=self.trust_pickle, roots=self.roots,
                    progress=lambda i, n, text: progress(i, n, f"building the demo zoo: {text}"))
                progress(0, 4, f"reading {pool.num_tasks} task checkpoints")
                taskset = TaskSet.from_pool(pool)
            progress(2, 4, "starting the merge engine")
            engine = Engine(taskset, cache_dir=self.cache_dir, device=self.device)
            self.evaluator = _make_evaluator(pool, engine, self.cache_dir, self.eval_split)
            progress(3, 4, "checking the SVD cache (hashing every task matrix once)")
            engine.cache_status()  # content hashes are memoised in the TaskSet: later status checks are cheap
            self.pool, self.taskset, self.engine = pool, taskset, engine
            progress(4, 4, "ready")
            return self

    def open_job(self) -> Job["Workspace"]:
        if self.is_open:
            return Job.completed(("open",), self)
        return self.jobs.submit(("open",), self.open, label=f"open {self.spec}")

    @property
    def task_names(self) -> list[str]:
        assert self.taskset is not None, "workspace not open"
        return list(self.taskset.task_names)

    # SVD cache -------------------------------------------------------------------------------------------------
    def cache_status(self) -> dict[str, int]:
        assert self.engine is not None
        return self.engine.cache_status()

    def cache_job(self, session: str | None = None) -> Job[int]:
        """Build every missing per-task SVD (a heavy job in the server's queue; returns at once with a finished job
        if nothing is missing). ``session``: the session waiting for it."""
        assert self.engine is not None
        key = ("svd-cache",)
        running = self.jobs.get(key)
        if running is not None and not running.done:
            return running.attach(session)
        status = self.engine.cache_status()
        if status["cached"] >= status["total"]:
            return Job.completed(key, 0)
        engine = self.engine
        return self.jobs.submit(key, lambda progress: engine.build_cache(progress=progress), label="SVD cache",
                                heavy=True, session=session)

    # memoised computations -------------------------------------------------------------------------------------
    def compute(self, key: Hashable, fn: Callable[[Progress], T], *, label: str = "", heavy: bool = False,
                session: str | None = None, background: bool = False) -> Job[T]:
        """A job for ``key``: finished at once when memoised, the running one when another session started it
        (``session`` then waits for it too), else a new background job whose result is memoised on success.
        ``heavy`` (evaluations, sweeps): the job takes a slot of the server's bounded queue."""
        if key in self.memo:
            return Job.completed(key, self.memo.get(key))
        return self.jobs.submit(key, fn, label=label, on_success=lambda value: self.memo.put(key, value),
                                heavy=heavy, session=session, background=background)

    def cached(self, key: Hashable, fn: Callable[[Progress], T], progress: Progress | None = None) -> T:
        """Synchronous form of :meth:`compute` (CLI, benchmarks, tests, and the parts of a job's work). Two threads
        asking for the same key at once compute it once: the second waits for the first's result."""
        while True:
            if key in self.memo:
                return self.memo.get(key)
            with self._inflight_lock:
                running = self._inflight.get(key)
                if running is None:
                    running = self._inflight[key] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                running.wait()
                continue  # memoised now; or the first computation failed, and this thread tries itself
            try:
                with holding():  # other threads may wait for this value: no queue slot is handed over meanwhile
                    value = fn(progress or (lambda i, n, t: None))
                self.memo.put(key, value)
                return value
            finally:
                with self._inflight_lock:
                    self._inflight.pop(key, None)
                running.set()

    # evaluation ------------------------------------------------------------------------------------------------
    def evaluate(self, state_dict: Mapping[str, Tensor], *, tasks: list[str] | None = None,
                 progress: Progress | None = None) -> dict[str, float]:
        """Top-1 accuracy (%) of an image-tower state dict on every task (or ``tasks``) with each task's frozen
        zero-shot head (the task-vector protocol of Ilharco et al. 2023 that the three papers follow). Not stored:
        :meth:`accuracies` is the cached, results-store-backed form."""
        assert self.pool is not None
        from spectral.eval.evaluate import task_accuracies

        device = self.engine.device if self.engine is not None else "cpu"
        with _evaluating():  # the pool's image tower is shared; one state dict at a time
            accs, _ = task_accuracies(self.pool, state_dict, tasks=tasks, split=self.eval_split, device=device,
                                      progress=progress)
        return {t: 100.0 * a for t, a in accs.items()}

    def accuracies(self, model: str, method_params: Mapping[str, Any] | None = None,
                   progress: Progress | None = None, *, split: str | None = None,
                   subsample: int | None = None) -> dict[str, float]:
        """Per-task accuracy (%) of ``"zeroshot"``, ``"finetuned"`` (each task's own fine-tuned model on its task)
        or a merge method with its parameters; memoised here and kept in the results store (SQLite in the cache),
        so no (pool, method, parameters) is evaluated twice, across sessions and restarts. ``subsample``: an
        estimate from that many images per task (see :meth:`live_subsample`)."""
        result = self.accuracy_result(model, method_params, progress, split=split, subsample=subsample)
        return {t: 100.0 * a for t, a in result.accuracies.items()}

    def accuracy_result(self, model: str, method_params: Mapping[str, Any] | None = None,
                        progress: Progress | None = None, *, split: str | None = None,
                        subsample: int | None = None) -> Any:
        """:meth:`accuracies` as the store's :class:`~spectral.eval.results.Result` (fractions, images per task,
        whether it is a subsample estimate, Wilson intervals)."""
        assert self.engine is not None and self.evaluator is not None
        params = dict(method_params or {})
        split = split or self.eval_split
        key: Hashable = ("accuracy-result", model, freeze(params))
        if split != self.eval_split:
            key = (*key, split)
        if subsample:
            key = (*key, "subsample", int(subsample))
        ev = self.evaluator

        def compute(progress: Progress) -> Any:
            with _evaluating():
                if model in ("zeroshot", "finetuned"):
                    return ev.reference_result(model, split, subsample=subsample or 0, progress=progress)
                self.engine.resolve(model, params)  # a named error for a bad parameter, before any work
                return ev.merged_result(model, split=split, progress=progress, subsample=subsample or 0, **params)

        return self.cached(key, compute, progress)

    def live_subsample(self, busy: bool = False) -> int | None:
        """Images per task of the merge lab's live estimate (``$SPECTRAL_LIVE_SUBSAMPLE``, default 256), or
        None when no task's split is larger: small splits (the demo zoo) are evaluated exactly at once.

        ``busy``: other sessions' interactive jobs hold or wait for the server's queue. Then splits of at most that
        size get a quicker estimate too (``$SPECTRAL_BUSY_SUBSAMPLE``, default 64 images per task, a quarter of
        the work), refined in the background like any estimate: under load each move costs a quarter as much
        queue time, and the exact numbers follow when the server is free."""
        assert self.evaluator is not None
        size = int(os.environ.get("SPECTRAL_LIVE_SUBSAMPLE", LIVE_SUBSAMPLE))
        if size <= 0:
            return None
        try:
            largest = self.evaluator.largest_split(self.eval_split)
        except Exception as err:  # noqa: BLE001 - a missing data folder: the evaluation itself reports it
            log.debug("split sizes unknown (%s): no estimate stage", err)
            return None
        if largest > size:
            return size
        if busy:
            quick = int(os.environ.get("SPECTRAL_BUSY_SUBSAMPLE", BUSY_SUBSAMPLE))
            return quick if 0 < quick < largest else None
        return None

    def compressed_accuracy(self, task: str, k_frac: float) -> float:
        """Accuracy (%) of TSV-C of one task at a rank fraction, on its own task (TSV Eq. 7), stored."""
        assert self.evaluator is not None

        def compute(progress: Progress) -> float:
            with _evaluating():
                return 100.0 * self.evaluator.compressed(task, float(k_frac))  # type: ignore[union-attr]

        return self.cached(("accuracy", "tsv_c", task, round(float(k_frac), 12)), compute)


_EVAL_LOCK = threading.RLock()


@contextmanager
def _evaluating() -> Iterator[None]:
    """The pool's model tower is shared: one state dict at a time. Held, it is no safe point for a background
    job to hand its queue slot over (:func:`spectral.serving.holding`)."""
    with _EVAL_LOCK, holding():
        yield
#: images per task of the merge lab's first, estimated accuracies on pools with larger splits
LIVE_SUBSAMPLE = 256
#: images per task of the estimate shown while other sessions' jobs keep the server busy (see live_subsample)
BUSY_SUBSAMPLE = 64


def _make_evaluator(pool: ModelPool, engine: Engine, cache_dir: str | None, split: str) -> Any:
    """The evaluation package's :class:`~spectral.eval.evaluate.Evaluator` over this engine, storing results in
    ``<cache>/results.sqlite`` (in memory only if the database cannot be opened)."""
    from spectral.eval.evaluate import Evaluator

    store: Any = None if cache_dir is None else Path(cache_dir) / "results.sqlite"
    try:
        return Evaluator(pool, engine=engine, store=store, split=split, device=engine.device, cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - sqlite3/OS errors: keep working without persistence
        log.warning("results store unavailable (%s): keeping accuracies in memory only", err)
        return Evaluator(pool, engine=engine, store=False, split=split, device=engine.device, cache_dir=cache_dir)


# -- workspaces by spec ----------------------------------------------------------------------------------------------
_WORKSPACES: dict[tuple[Any, ...], Workspace] = {}
_WS_LOCK = threading.Lock()


def get_workspace(spec: str, device: str = "auto", cache_dir: str | None = None, *,
                  trust_pickle: bool = False, roots: tuple[Path, ...] | None = None) -> Workspace:
    """The process-wide workspace of a pool spec and device (not opened yet: call ``open()`` / ``open_job()``).

    Trusted and untrusted opens of the same spec are separate workspaces: ticking the trust control never turns a
    pool that another session opened without trust into a trusted one, or the reverse. ``roots``: the pool roots
    the workspace is bounded by (the dashboard's; None: unbounded)."""
    key: tuple[Any, ...] = (spec.strip(), device, cache_dir, bool(trust_pickle))
    if roots is not None:
        key = (*key, tuple(roots))
    with _WS_LOCK:
        if key not in _WORKSPACES:
            _WORKSPACES[key] = Workspace(spec.strip(), device=device, cache_dir=cache_dir,
                                         trust_pickle=bool(trust_pickle), roots=roots)
        return _WORKSPACES[key]


def forget_workspace(spec: str, device: str = "auto", cache_dir: str | None = None, *,
                     trust_pickle: bool = False, roots: tuple[Path, ...] | None = None) -> None:
    key: tuple[Any, ...] = (spec.strip(), device, cache_dir, bool(trust_pickle))
    with _WS_LOCK:
        _WORKSPACES.pop(key if roots is None else (*key, tuple(roots)), None)


def needs_trust(err: BaseException | None) -> bool:
    """Whether an open failed only because a pickled checkpoint was refused (the cause chain is searched: the
    pool may wrap the loader's error)."""
    from spectral.errors import UntrustedPickleError

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UntrustedPickleError):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
