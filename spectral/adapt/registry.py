"""Background adaptation runs for long-lived front ends (the dashboard keeps one :class:`RunRegistry` in
``st.cache_resource``): each run optimises in its own daemon thread, so pages stay responsive and other pages keep
working; a page polls :meth:`RunHandle.status` and stops a run through its event. Nothing here imports streamlit.
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from spectral.adapt.run import Adaptation, AdaptResult

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

    @property
    def run_id(self) -> str:
        return self.adaptation.run_id

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _progress(self, i: int, n: int, text: str) -> None:
        with self._lock:
            self.progress = (i, n, text)

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

    def __init__(self) -> None:
        self._runs: dict[str, RunHandle] = {}
        self._lock = threading.Lock()

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
    ) -> RunHandle:
        """Start (or resume) ``adaptation`` in a daemon thread; a run with the same id that is still going is
        returned as it is. A stopped run's in-memory state is reused, so resuming costs no re-preparation."""
        with self._lock:
            handle = self._runs.get(adaptation.run_id)
            if handle is not None and handle.running:
                return handle
            if handle is None or handle.adaptation.config != adaptation.config:
                handle = RunHandle(adaptation)
                self._runs[adaptation.run_id] = handle
            handle.stop_event.clear()
            handle.error = None
            thread = threading.Thread(
                target=self._work, args=(handle, steps, on_done), name=f"adapt-{handle.run_id}", daemon=True
            )
            handle.thread = thread
            thread.start()
            return handle

    @staticmethod
    def _work(handle: RunHandle, steps: int | None, on_done: Callable[[AdaptResult], None] | None) -> None:
        try:
            result = handle.adaptation.run(progress=handle._progress, stop=handle.stop_event, steps=steps)
            handle.result = result
            if on_done is not None:
                on_done(result)
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
