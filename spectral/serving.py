"""Serving the dashboard to a group: where it listens, whether pickles may be trusted, and one bounded queue for the
heavy work every session starts.

- :func:`is_loopback`: whether a listening address reaches only this machine (``127.0.0.1``, ``::1``,
  ``localhost``). An unset address means every interface.
- :func:`pickle_control_enabled`: the dashboard's "Trust pickled checkpoints" control works on loopback; served
  beyond it, only when the server was started with ``SPECTRAL_ALLOW_PICKLE=1``. (The restricted unpickler is in
  force in every case: this decides only whether the control can be ticked.)
- :class:`JobQueue`: cache builds, evaluations, sweeps and adaptation runs started from the dashboard take one of
  ``SPECTRAL_MAX_JOBS`` slots (default: one per GPU, 1 on CPU) and wait in order for one. A job knows which
  sessions wait for it; when every one of them has closed (for longer than a grace period) it is cancelled, in the
  queue or at its next progress report.

Nothing here imports streamlit: the dashboard installs a session probe (:func:`set_session_probe`) that says
whether a session id is still connected.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Protocol

from spectral.errors import SpectralError
from spectral.roots import POOL_ROOTS_ENV, OutsidePoolRootsError, check_path, pool_roots  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

ALLOW_PICKLE_ENV = "SPECTRAL_ALLOW_PICKLE"
#: a JSON-lines file the server appends job and rerun timings to (``bench/sessions.py`` reads it); unset: nothing
TRACE_ENV = "SPECTRAL_TRACE"
MAX_JOBS_ENV = "SPECTRAL_MAX_JOBS"
#: a session that has been disconnected this long no longer keeps a job alive (a reconnecting tab keeps it)
SESSION_GRACE_S = 10.0
#: seconds after another session's interactive job entered the queue during which the server counts as busy
ACTIVE_WINDOW_S = 5.0
#: seconds without other sessions' interactive jobs before background work (whole-split refinements) may start
BACKGROUND_AFTER_S = 3.0


class JobCancelled(SpectralError, RuntimeError):
    """A job was cancelled: every session waiting for it closed, or it was cancelled explicitly."""


# -- timings --------------------------------------------------------------------------------------------------
_TRACE_LOCK = threading.Lock()


def trace(event: str, **fields: object) -> None:
    """Append ``{"t": wall-clock seconds, "event": event, "thread": name, **fields}`` to ``$SPECTRAL_TRACE`` when
    it is set (a no-op otherwise): where a slow slider move spent its time, job by job and rerun by rerun."""
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    line = json.dumps({"t": round(time.time(), 4), "event": event, "thread": threading.current_thread().name,
                       **fields}, default=str)
    with _TRACE_LOCK, open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


# -- safe points -------------------------------------------------------------------------------------------------
_HELD = threading.local()


@contextmanager
def holding() -> Iterator[None]:
    """Mark a region in which this thread holds something another job may wait for (the shared model tower, a
    computation other threads wait to share). A background job does not hand its queue slot over inside one: the
    job it handed the slot to could wait for this thread while this thread waits for the slot back."""
    _HELD.depth = getattr(_HELD, "depth", 0) + 1
    try:
        yield
    finally:
        _HELD.depth -= 1


def at_safe_point() -> bool:
    """Whether this thread holds nothing marked by :func:`holding` (so it may wait for a queue slot)."""
    return getattr(_HELD, "depth", 0) == 0


# -- where the server listens -------------------------------------------------------------------------------------
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(address: str | None) -> bool:
    """Whether a listening address reaches this machine only. Empty or unset (Streamlit's default: every
    interface), ``0.0.0.0``, ``::`` and any other address or host name are not loopback."""
    if not address or not address.strip():
        return False
    text = address.strip().strip("[]").lower()
    if text in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to a public interface


def pickle_control_enabled(address: str | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the "Trust pickled checkpoints" control may be ticked: on loopback always; served beyond loopback
    only when ``$SPECTRAL_ALLOW_PICKLE`` is ``1`` (a pickle runs code, and anyone reaching the port could tick it)."""
    env = os.environ if environ is None else environ
    return is_loopback(address) or env.get(ALLOW_PICKLE_ENV, "").strip() == "1"


def max_jobs(environ: Mapping[str, str] | None = None, *, gpus: int | None = None) -> int:
    """Slots of the server's job queue: ``$SPECTRAL_MAX_JOBS``, else one per GPU, else 1."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_JOBS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise SpectralError(f"{MAX_JOBS_ENV}={raw!r} is not a whole number of job slots") from None
        if value < 1:
            raise SpectralError(f"{MAX_JOBS_ENV}={raw!r}: at least 1 job slot is needed")
        return value
    if gpus is None:
        try:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # noqa: BLE001 - no usable CUDA: CPU
            gpus = 0
    return max(1, int(gpus))


# -- sessions -------------------------------------------------------------------------------------------------------
_SESSION_PROBE: Callable[[str], bool] | None = None


def set_session_probe(probe: Callable[[str], bool] | None) -> None:
    """Install the function that says whether a session id is still connected (the dashboard's runtime)."""
    global _SESSION_PROBE
    _SESSION_PROBE = probe


def session_alive(session_id: str) -> bool:
    """Whether a session is connected; True when no probe is installed (CLI, tests) or the probe fails."""
    probe = _SESSION_PROBE
    if probe is None:
        return True
    try:
        return bool(probe(session_id))
    except Exception:  # noqa: BLE001 - an unanswerable probe must not cancel work
        log.debug("session probe failed for %s", session_id, exc_info=True)
        return True


class Waiters:
    """The sessions waiting for one job, with when each was last seen connected (thread-safe)."""

    def __init__(self, grace_s: float | None = None) -> None:
        #: None: :data:`SESSION_GRACE_S` as it is when checked
        self.grace_s = grace_s
        self._seen: dict[str, float] = {}
        #: a session stopped waiting (it asked for something else): with nobody left, the job is abandoned
        self._left = False
        self._lock = threading.Lock()

    def add(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._seen[session_id] = time.monotonic()

    def remove(self, session_id: str | None) -> None:
        """A session no longer waits (its slider moved on): the job is abandoned once no session is left."""
        if session_id:
            with self._lock:
                if self._seen.pop(session_id, None) is not None:
                    self._left = True

    def sessions(self) -> list[str]:
        with self._lock:
            return list(self._seen)

    def all_gone(self) -> bool:
        """True when at least one session waited and none still does: each has been disconnected for longer than
        the grace period, or has moved on (:meth:`remove`). A job nobody waited for (started by the CLI, a test, a
        benchmark) is never abandoned."""
        now = time.monotonic()
        with self._lock:
            if not self._seen:
                return self._left
            for sid in list(self._seen):
                if session_alive(sid):
                    self._seen[sid] = now
            grace = SESSION_GRACE_S if self.grace_s is None else self.grace_s
            return all(now - seen > grace for seen in self._seen.values())


# -- the queue ----------------------------------------------------------------------------------------------------
class Queued(Protocol):
    """What the queue needs of a job."""

    label: str
    text: str
    #: 0: a session waits on screen for it (an estimate); higher: background work (a whole-split refinement), which
    #: hands its slot to a waiting interactive job at its next progress report
    priority: int

    def should_cancel(self) -> bool: ...


class JobQueue:
    """At most ``slots`` heavy jobs run at once, server-wide; the others wait in the order they came.

    A job's thread calls ``with queue.slot(job): ...`` around its work. While it waits, ``job.text`` says how many
    jobs are ahead of it, and ``job.should_cancel()`` is polled: a job whose sessions all closed leaves the queue
    with :class:`JobCancelled` without having run.

    Waiting jobs are served by ``job.priority`` (0 first), in arrival order within a priority. A running background
    job (priority > 0) calls :meth:`yield_slot` at its progress reports: when an interactive job waits for a slot,
    the background job hands its slot over and queues again ahead of later background work. So a slider move's
    estimate never waits for another session's whole-split evaluation to finish (``bench/sessions.py``).
    """

    def __init__(self, slots: int, *, poll_s: float = 0.25, background_after_s: float = BACKGROUND_AFTER_S) -> None:
        if slots < 1:
            raise SpectralError(f"a job queue needs at least 1 slot, got {slots}")
        self.slots = int(slots)
        self.poll_s = poll_s
        self.background_after_s = background_after_s
        #: (when, sessions) of interactive jobs entering and leaving a slot, lately (see :meth:`_may_start`)
        self._interactive: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=256)
        self._cond = threading.Condition()
        self._running: list[Queued] = []
        self._waiting: list[Queued] = []
        #: (when, sessions) of the interactive jobs that entered the queue lately (see :meth:`others_active`)
        self._entered: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=256)

    @contextmanager
    def slot(self, job: Queued) -> Iterator[None]:
        with self._cond:
            if _priority(job) == 0:
                self._entered.append((time.monotonic(), tuple(_sessions(job))))
            self._waiting.append(job)
            try:
                self._wait_for_turn(job, "queued")
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()
            self._running.append(job)
            job.text = "starting…"
        try:
            yield
        finally:
            with self._cond:
                if any(j is job for j in self._running):
                    self._running.remove(job)
                if _priority(job) == 0:
                    self._interactive.append((time.monotonic(), tuple(_sessions(job))))
                self._cond.notify_all()

    def _wait_for_turn(self, job: Queued, state: str) -> None:
        while not (len(self._running) < self.slots and self._ordered()[0] is job and self._may_start(job)):
            if job.should_cancel():
                raise JobCancelled(f"job {job.label!r} cancelled while {state}: no session waits for it")
            ahead = self._ahead(job)
            job.text = f"{state}: {ahead} job{'s' if ahead != 1 else ''} ahead (at most {self.slots} at once)"
            self._cond.wait(self.poll_s)

    def _may_start(self, job: Queued) -> bool:
        """Background work starts only once other sessions' interactive jobs have neither run nor waited for
        ``background_after_s``: while people move sliders, their estimates have the server (a refinement, once
        started, keeps its slot up to its next safe point). Its own sessions' jobs do not hold it back: a lone
        user's refinement starts as soon as the estimate is drawn."""
        if _priority(job) == 0:
            return True
        mine = set(_sessions(job))

        def other(who: tuple[str, ...]) -> bool:
            return not who or not set(who) <= mine

        if any(other(tuple(_sessions(j))) for j in (*self._running, *self._waiting)
               if j is not job and _priority(j) == 0):
            return False
        since = time.monotonic() - self.background_after_s
        return not any(other(who) for when, who in self._interactive if when >= since)

    def _ordered(self) -> list[Queued]:
        return sorted(self._waiting, key=_priority)  # stable: arrival order within a priority

    def _ahead(self, job: Queued) -> int:
        return len(self._running) + [j is job for j in self._ordered()].index(True)

    def yield_slot(self, job: Queued) -> bool:
        """Called by a running job at a progress report: a background job hands its slot to a waiting job of
        higher priority (lower number) when no slot is free, waits for its turn again, and returns True once it
        runs again (False: it kept its slot). Cheap when nothing waits: no lock is taken. It never yields inside a
        :func:`holding` region of its thread (see there)."""
        mine = _priority(job)
        if mine == 0 or not any(_priority(w) < mine for w in list(self._waiting)) or not at_safe_point():
            return False
        with self._cond:
            if (not any(j is job for j in self._running) or len(self._running) < self.slots
                    or not any(_priority(w) < mine for w in self._waiting)):
                return False
            self._running.remove(job)
            self._waiting.insert(0, job)  # first of its priority: it resumes before later background work
            self._cond.notify_all()
            trace("job_yield", job=getattr(job, "label", ""))
            try:
                self._wait_for_turn(job, "paused for an interactive job")
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()
            self._running.append(job)
            job.text = "resuming…"
            trace("job_resume", job=getattr(job, "label", ""))
        return True

    def interactive_load(self) -> int:
        """Jobs a session waits for on screen (priority 0), running or queued: while there are any, a new
        interactive job would wait behind them (the merge lab then shows a quicker estimate first)."""
        with self._cond:
            return sum(_priority(j) == 0 for j in (*self._running, *self._waiting))

    def others_active(self, session: str | None, window_s: float = ACTIVE_WINDOW_S) -> bool:
        """Whether sessions other than ``session`` keep the queue busy: one of their interactive jobs runs or waits,
        or entered the queue within the last ``window_s`` seconds (people moving sliders right now, between two of
        their moves)."""
        since = time.monotonic() - window_s
        with self._cond:
            current = [tuple(_sessions(j)) for j in (*self._running, *self._waiting) if _priority(j) == 0]
            recent = [who for when, who in self._entered if when >= since]
        return any(any(s != session for s in who) or not who for who in (*current, *recent))

    def ahead_of(self, job: Queued) -> int | None:
        """Jobs running or queued before ``job``: 0 while it runs, None when it is not in the queue."""
        with self._cond:
            if any(j is job for j in self._running):
                return 0
            if any(j is job for j in self._waiting):
                return self._ahead(job)
            return None

    def snapshot(self) -> tuple[list[Queued], list[Queued]]:
        """``(running, waiting)``, the waiting ones in queue order."""
        with self._cond:
            return list(self._running), list(self._waiting)


def _priority(job: Queued) -> int:
    return int(getattr(job, "priority", 0))


def _sessions(job: Queued) -> list[str]:
    waiters = getattr(job, "waiters", None)
    return waiters.sessions() if waiters is not None else []


_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def job_queue() -> JobQueue:
    """The process-wide queue (created on first use with :func:`max_jobs` slots)."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = JobQueue(max_jobs())
        return _QUEUE


def reset_job_queue(slots: int | None = None) -> JobQueue:
    """Replace the process-wide queue (tests; a running job keeps the queue it entered)."""
    global _QUEUE
    with _QUEUE_LOCK:
        _QUEUE = JobQueue(slots if slots is not None else max_jobs())
        return _QUEUE
