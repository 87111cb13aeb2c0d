"""Background adaptation runs for long-lived front ends (the dashboard keeps one :class:`RunRegistry` in
``st.cache_resource``): each run optimises in its own daemon thread, so pages stay responsive and other pages keep
working; a page polls :meth:`RunHandle.status` and stops a run through its event. Nothing here imports streamlit.

A registry made with ``bounded=True`` (the dashboard's) runs each adaptation in a slot of the server's job queue
(:func:`spectral.serving.job_queue`); a run whose waiting sessions have all closed stops at its next step (its
checkpoint is written, so it can be resumed).
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from spectral.adapt.run import Adaptation, AdaptResult
from spectral.serving import JobCancelled, Waiters, job_queue

log = logging.getLogger(__name__)


class RunHandle:
    """One adaptation and the thread running it."""

    def __init__(self, adaptation: Adaptation) -> None:
        self.adaptation = adaptation
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.progress: tuple[int, int, str] = (adaptation.step, adaptation.config.steps, "queued")
        self.result: AdaptResult | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        #: sessions waiting for the run (the dashboard's): when all have closed, the run stops
        self.waiters = Waiters()

    # what the server's job queue reads (spectral.serving.Queued)
    @property
    def label(self) -> str:
        return self.adaptation.config.label

    @property
    def text(self) -> str:
        with self._lock:
            return self.progress[2]

    @text.setter
    def text(self, value: str) -> None:
        with self._lock:
            self.progress = (self.progress[0], self.progress[1], value)

    def should_cancel(self) -> bool:
        if not self.stop_event.is_set() and self.waiters.all_gone():
            log.info("stopping adaptation %s: every session waiting for it has closed", self.run_id)
            self.stop_event.set()
        return self.stop_event.is_set()

    @property
    def run_id(self) -> str:
        return self.adaptation.run_id

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _progress(self, i: int, n: int, text: str) -> None:
        with self._lock:
            self.progress = (i, n, text)
        self.should_cancel()  # sets the stop event when no session waits any more: the run stops after this step

    def status(self) -> dict[str, Any]:
        """State, step, total, progress text, last entropy and error (if any), read without blocking the run."""
        info = self.adaptation.status()
        with self._lock:
            i, n, text = self.progress
            info.update({"running": self.running, "progress": (i, n), "text": text, "error": self.error})
        if info["error"]:
            info["state"] = "failed"
        return info

    def stop(self) -> None:
        """Ask the run to stop after the current step (it then writes its checkpoint)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


class RunRegistry:
    """Runs by run id. ``start`` launches or resumes a run in a background thread (one thread per run id)."""

    def __init__(self, *, bounded: bool = False) -> None:
        self._runs: dict[str, RunHandle] = {}
        self._lock = threading.Lock()
        self.bounded = bounded

    def get(self, run_id: str) -> RunHandle | None:
        with self._lock:
            return self._runs.get(run_id)

    def handles(self) -> list[RunHandle]:
        with self._lock:
            return list(self._runs.values())

    def start(
        self,
        adaptation: Adaptation,
        *,
        steps: int | None = None,
        on_done: Callable[[AdaptResult], None] | None = None,
        session: str | None = None,
    ) -> RunHandle:
        """Start (or resume) ``adaptation`` in a daemon thread; a run with the same id that is still going is
        returned as it is. A stopped run's in-memory state is reused, so resuming costs no re-preparation."""
        with self._lock:
            handle = self._runs.get(adaptation.run_id)
            if handle is not None and handle.running:
                handle.waiters.add(session)
                return handle
            if handle is None or handle.adaptation.config != adaptation.config:
                handle = RunHandle(adaptation)
                self._runs[adaptation.run_id] = handle
            handle.stop_event.clear()
            handle.error = None
            handle.waiters = Waiters()
            handle.waiters.add(session)
            thread = threading.Thread(
                target=self._work, args=(handle, steps, on_done, self.bounded), name=f"adapt-{handle.run_id}",
                daemon=True,
            )
            handle.thread = thread
            thread.start()
            return handle

    @staticmethod
    def _work(handle: RunHandle, steps: int | None, on_done: Callable[[AdaptResult], None] | None,
              bounded: bool = False) -> None:
        def work() -> None:
            result = handle.adaptation.run(progress=handle._progress, stop=handle.stop_event, steps=steps)
            handle.result = result
            if on_done is not None:
                on_done(result)

        try:
            if bounded:
                with job_queue().slot(handle):
                    work()
            else:
                work()
        except JobCancelled as err:  # left the queue unstarted: stopped, or nobody waits any more
            handle.error = f"not started: {err}"
        except Exception as err:  # noqa: BLE001 - reported to the page, logged with its traceback
            handle.error = f"{type(err).__name__}: {err}"
            log.error("adaptation %s failed:\n%s", handle.run_id, traceback.format_exc())

    def stop(self, run_id: str) -> None:
        handle = self.get(run_id)
        if handle is not None:
            handle.stop()

    def forget(self, run_id: str) -> None:
        """Drop a run that is not running (e.g. after its checkpoint was discarded)."""
        with self._lock:
            handle = self._runs.get(run_id)
            if handle is not None and not handle.running:
                del self._runs[run_id]

    def stop_all(self) -> None:
        for handle in self.handles():
            handle.stop()
