"""Serving to a group (issue 26): loopback detection, the pickle policy, job slots, and the server's bounded job
queue: at most N heavy jobs at once, in order; the same job from two sessions runs once and both get its result;
a job whose sessions all closed is cancelled (queued or running), unless another session still waits for it."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from spectral import serving
from spectral.app_state import Job, JobRunner, Workspace
from spectral.errors import SpectralError
from spectral.serving import JobCancelled, JobQueue, is_loopback, max_jobs, pickle_control_enabled

WAIT = 30.0  # seconds an event may take on a busy machine (never reached when the code is right)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("", False), (None, False), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("gpu-server", False),
])
def test_is_loopback(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_pickle_control_only_on_loopback_unless_allowed() -> None:
    assert pickle_control_enabled("127.0.0.1", {})
    assert not pickle_control_enabled("0.0.0.0", {})
    assert not pickle_control_enabled("", {})  # unset address: every interface
    assert not pickle_control_enabled("0.0.0.0", {"SPECTRAL_ALLOW_PICKLE": "yes"})  # exactly 1
    assert pickle_control_enabled("0.0.0.0", {"SPECTRAL_ALLOW_PICKLE": "1"})


def test_job_slots() -> None:
    assert max_jobs({}, gpus=0) == 1
    assert max_jobs({}, gpus=4) == 4  # one per GPU
    assert max_jobs({"SPECTRAL_MAX_JOBS": "3"}, gpus=0) == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(SpectralError, match="SPECTRAL_MAX_JOBS"):
            max_jobs({"SPECTRAL_MAX_JOBS": bad})


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """Connected sessions by id (the probe the dashboard installs), with no grace period."""
    alive: dict[str, bool] = {}
    monkeypatch.setattr(serving, "SESSION_GRACE_S", 0.0)
    before = serving._SESSION_PROBE
    serving.set_session_probe(lambda sid: alive.get(sid, False))
    try:
        yield alive
    finally:
        serving.set_session_probe(before)


@pytest.fixture
def one_slot() -> Iterator[JobQueue]:
    queue = serving.reset_job_queue(1)
    yield queue
    serving.reset_job_queue()


def _blocking(started: threading.Event, release: threading.Event, calls: list[str], name: str, *,
              report: bool = False):
    def fn(progress):  # noqa: ANN001, ANN202
        calls.append(name)
        started.set()
        while not release.wait(0.05):
            if report:
                progress(0, 1, "working")  # a running job stops here once cancelled
        return name
    return fn


def test_heavy_jobs_take_turns_in_order(one_slot: JobQueue) -> None:
    runner = JobRunner()
    order: list[str] = []
    first_started, release_first = threading.Event(), threading.Event()
    first = runner.submit("a", _blocking(first_started, release_first, order, "a"), label="a", heavy=True)
    assert first_started.wait(WAIT)
    done_b, done_c = threading.Event(), threading.Event()
    second = runner.submit("b", lambda p: (order.append("b"), done_b.set())[-1] or "b", label="b", heavy=True)
    third = runner.submit("c", lambda p: (order.append("c"), done_c.set())[-1] or "c", label="c", heavy=True)
    light = runner.submit("light", lambda p: "light")  # not heavy: never queued
    assert light.result(WAIT) == "light"
    for _ in range(200):  # both queued behind the first
        if one_slot.ahead_of(third) == 2:
            break
        threading.Event().wait(0.02)
    assert one_slot.ahead_of(first) == 0 and one_slot.ahead_of(second) == 1 and one_slot.ahead_of(third) == 2
    assert second.ahead() == 1 and "1 job ahead" in second.text
    assert order == ["a"]  # nothing else ran while the only slot was taken
    release_first.set()
    assert first.result(WAIT) == "a" and second.result(WAIT) == "b" and third.result(WAIT) == "c"
    assert order == ["a", "b", "c"]
    assert one_slot.snapshot() == ([], [])


def test_two_slots_run_two_at_once() -> None:
    queue = serving.reset_job_queue(2)
    try:
        runner = JobRunner()
        calls: list[str] = []
        s1, s2, release = threading.Event(), threading.Event(), threading.Event()
        a = runner.submit("a", _blocking(s1, release, calls, "a"), heavy=True)
        b = runner.submit("b", _blocking(s2, release, calls, "b"), heavy=True)
        assert s1.wait(WAIT) and s2.wait(WAIT)  # both started although neither finished
        assert len(queue.snapshot()[0]) == 2
        release.set()
        assert a.result(WAIT) == "a" and b.result(WAIT) == "b"
    finally:
        serving.reset_job_queue()


def test_the_same_job_from_two_sessions_runs_once(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    sessions.update(one=True, two=True)
    ws = Workspace("unused")
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()
    fn = _blocking(started, release, calls, "value")
    job1 = ws.compute(("accuracy", "tsv_m", (("k_frac", 0.5),)), fn, heavy=True, session="one")
    job2 = ws.compute(("accuracy", "tsv_m", (("k_frac", 0.5),)), fn, heavy=True, session="two")
    assert job1 is job2 and set(job1.waiters.sessions()) == {"one", "two"}
    release.set()
    assert job1.result(WAIT) == "value" and job2.result(WAIT) == "value"
    assert calls == ["value"]
    # later askers get the memoised result without a job
    again = ws.compute(("accuracy", "tsv_m", (("k_frac", 0.5),)), fn, heavy=True, session="two")
    assert again.done and again.result() == "value" and calls == ["value"]


def test_cached_computes_a_key_once_for_concurrent_callers() -> None:
    ws = Workspace("unused")
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()

    def fn(progress):  # noqa: ANN001, ANN202
        calls.append(1)
        started.set()
        release.wait(WAIT)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(ws.cached("k", fn)))
    first.start()
    assert started.wait(WAIT)
    second = threading.Thread(target=lambda: results.append(ws.cached("k", fn)))
    second.start()
    release.set()
    first.join(WAIT), second.join(WAIT)
    assert results == [42, 42] and calls == [1]


def test_a_queued_job_whose_session_closed_never_runs(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    sessions.update(owner=True, gone=True)
    runner = JobRunner()
    calls: list[str] = []
    s1, release = threading.Event(), threading.Event()
    blocker = runner.submit("blocker", _blocking(s1, release, calls, "blocker"), heavy=True, session="owner")
    assert s1.wait(WAIT)
    queued = runner.submit("queued", lambda p: calls.append("queued"), heavy=True, session="gone")
    sessions["gone"] = False  # the tab closed
    with pytest.raises(JobCancelled):
        queued.result(WAIT)
    assert queued.cancelled and one_slot.ahead_of(queued) is None
    release.set()
    assert blocker.result(WAIT) == "blocker"
    assert calls == ["blocker"]


def test_a_running_job_stops_when_its_last_session_closes(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    sessions.update(a=True, b=True)
    runner = JobRunner()
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()
    job = runner.submit("sweep", _blocking(started, release, calls, "sweep", report=True), heavy=True, session="a")
    job.attach("b")
    assert started.wait(WAIT)
    sessions["a"] = False  # one of two sessions closed: the other still waits, the job goes on
    for _ in range(3):
        job.progress(0, 1, "still running")  # the checks the work itself makes
    assert not job.done and not job.should_cancel()
    sessions["b"] = False
    with pytest.raises(JobCancelled):
        job.result(WAIT)
    assert one_slot.snapshot() == ([], [])  # the slot is free again
    # the next job of the same key starts afresh
    release.set()
    assert runner.submit("sweep", lambda p: "again", heavy=True).result(WAIT) == "again"


def test_a_job_nobody_waits_for_is_never_cancelled(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    """Started by the CLI, a benchmark or a test: no session, nothing to cancel it."""
    job = JobRunner().submit("cli", lambda p: (p(1, 2, "half"), "done")[1], heavy=True)
    assert job.result(WAIT) == "done" and not job.should_cancel()


def test_a_completed_job_ignores_waiters() -> None:
    job = Job.completed("k", 1)
    job.attach("someone")
    assert job.waiters.sessions() == [] and job.result() == 1


def test_an_interactive_job_goes_ahead_of_queued_background_work(one_slot: JobQueue) -> None:
    runner = JobRunner()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()
    first = runner.submit("a", _blocking(started, release, order, "a"), heavy=True)
    assert started.wait(WAIT)
    refine = runner.submit("refine", lambda p: order.append("refine") or "refine", heavy=True, background=True)
    for _ in range(200):
        if one_slot.ahead_of(refine) == 1:
            break
        threading.Event().wait(0.02)
    estimate = runner.submit("estimate", lambda p: order.append("estimate") or "estimate", heavy=True)
    for _ in range(200):
        if one_slot.ahead_of(estimate) is not None:
            break
        threading.Event().wait(0.02)
    # the estimate came later but waits only for the running job; the queued refinement comes after it
    assert one_slot.ahead_of(estimate) == 1 and one_slot.ahead_of(refine) == 2
    release.set()
    assert first.result(WAIT) == "a" and estimate.result(WAIT) == "estimate" and refine.result(WAIT) == "refine"
    assert order == ["a", "estimate", "refine"]


def test_running_background_work_hands_its_slot_to_an_interactive_job(one_slot: JobQueue) -> None:
    runner = JobRunner()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def refine(progress):  # noqa: ANN001, ANN202 - a whole-split evaluation, reporting per batch
        order.append("refine starts")
        started.set()
        while not release.wait(0.02):
            progress(0, 1, "evaluating")
        order.append("refine ends")
        return "refine"

    background = runner.submit("refine", refine, heavy=True, background=True)
    assert started.wait(WAIT)
    estimate = runner.submit("estimate", lambda p: order.append("estimate") or "estimate", heavy=True)
    # the estimate runs while the refinement is still unfinished: it paused at a progress report
    assert estimate.result(WAIT) == "estimate"
    assert order == ["refine starts", "estimate"] and not background.done
    release.set()
    assert background.result(WAIT) == "refine"
    assert order == ["refine starts", "estimate", "refine ends"]
    assert one_slot.snapshot() == ([], [])


def test_foreground_work_keeps_its_slot(one_slot: JobQueue) -> None:
    """Only background jobs yield: a foreground job (a sweep someone waits for) finishes before the next one."""
    runner = JobRunner()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()
    first = runner.submit("sweep", _blocking(started, release, order, "sweep", report=True), heavy=True)
    assert started.wait(WAIT)
    second = runner.submit("estimate", lambda p: order.append("estimate") or "estimate", heavy=True)
    threading.Event().wait(0.3)
    assert order == ["sweep"] and not second.done
    release.set()
    assert first.result(WAIT) == "sweep" and second.result(WAIT) == "estimate"


def test_asking_for_background_work_in_the_foreground_makes_it_interactive(one_slot: JobQueue) -> None:
    runner = JobRunner()
    started, release = threading.Event(), threading.Event()
    job = runner.submit("refine", _blocking(started, release, [], "refine"), heavy=True, background=True)
    assert job.priority == 1
    assert runner.submit("refine", lambda p: "other", heavy=True) is job and job.priority == 0
    release.set()
    assert job.result(WAIT) == "refine"


def test_background_work_holding_the_model_tower_finishes_before_handing_its_slot_over(one_slot: JobQueue) -> None:
    """The deadlock the sessions bench found: a refinement reported progress while evaluating (holding the shared
    model tower), handed its slot to an estimate, and the estimate then waited for the tower forever. A background
    job now yields only at a safe point: here after its evaluation, before its next one."""
    from spectral import app_state

    runner = JobRunner()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def refine(progress):  # noqa: ANN001, ANN202 - two evaluations, reporting per batch
        for model in ("ta", "tsv"):
            with app_state._evaluating():
                order.append(f"refine {model}")
                started.set()
                while not release.wait(0.02):
                    progress(0, 1, "evaluating")  # inside the tower: no yield here
            progress(1, 2, "between models")  # a safe point
        return "refine"

    def estimate(progress):  # noqa: ANN001, ANN202
        with app_state._evaluating():
            order.append("estimate")
        return "estimate"

    background = runner.submit("refine", refine, heavy=True, background=True)
    assert started.wait(WAIT)
    quick = runner.submit("estimate", estimate, heavy=True)
    threading.Event().wait(0.3)
    assert not quick.done  # it waits for the slot, not for a tower the paused refinement holds
    release.set()
    assert quick.result(WAIT) == "estimate" and background.result(WAIT) == "refine"
    assert order == ["refine ta", "estimate", "refine tsv"]  # the estimate went ahead at the safe point


def test_holding_marks_no_safe_point_until_left() -> None:
    assert serving.at_safe_point()
    with serving.holding():
        assert not serving.at_safe_point()
        with serving.holding():
            assert not serving.at_safe_point()
        assert not serving.at_safe_point()
    assert serving.at_safe_point()


def test_a_job_its_only_session_moved_on_from_leaves_the_queue(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    """A slider dragged through values: each superseded evaluation, still queued, is dropped unrun."""
    sessions["a"] = True
    runner = JobRunner()
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()
    running = runner.submit("other", _blocking(started, release, calls, "other"), heavy=True, session="b")
    assert started.wait(WAIT)
    old = runner.submit("alpha=0.30", lambda p: calls.append("0.30") or "0.30", heavy=True, session="a")
    new = runner.submit("alpha=0.35", lambda p: calls.append("0.35") or "0.35", heavy=True, session="a")
    assert one_slot.interactive_load() == 3
    old.detach("a")
    with pytest.raises(JobCancelled):
        old.result(WAIT)
    release.set()
    assert new.result(WAIT) == "0.35" and running.result(WAIT) == "other"
    assert calls == ["other", "0.35"]
    assert one_slot.interactive_load() == 0


def test_a_job_another_session_still_waits_for_keeps_running(one_slot: JobQueue, sessions: dict[str, bool]) -> None:
    sessions.update(a=True, b=True)
    runner = JobRunner()
    started, release = threading.Event(), threading.Event()
    job = runner.submit("shared", _blocking(started, release, [], "shared"), heavy=True, session="a")
    assert runner.submit("shared", lambda p: "again", heavy=True, session="b") is job
    job.detach("a")
    assert not job.cancel_requested
    release.set()
    assert job.result(WAIT) == "shared"


def test_a_cancelled_job_winding_down_is_not_handed_to_a_new_asker(one_slot: JobQueue,
                                                                  sessions: dict[str, bool]) -> None:
    sessions["a"] = True
    runner = JobRunner()
    started, release = threading.Event(), threading.Event()
    job = runner.submit("k", _blocking(started, release, [], "first"), heavy=True, session="a")
    assert started.wait(WAIT)
    job.detach("a")
    assert job.cancel_requested and not job.done  # it stops at its next progress report (it makes none here)
    again = runner.submit("k", lambda p: "second", heavy=True, session="a")
    assert again is not job
    release.set()
    assert again.result(WAIT) == "second"


def test_interactive_load_counts_what_sessions_wait_for_on_screen(one_slot: JobQueue) -> None:
    runner = JobRunner()
    started, release = threading.Event(), threading.Event()
    background = runner.submit("refine", _blocking(started, release, [], "refine", report=True), heavy=True,
                               background=True)
    assert started.wait(WAIT)
    assert one_slot.interactive_load() == 0  # a refinement alone: the server is free for an exact evaluation
    release.set()
    background.result(WAIT)


def test_others_active_sees_other_sessions_jobs_now_and_lately(one_slot: JobQueue) -> None:
    runner = JobRunner()
    assert not one_slot.others_active("me")
    started, release = threading.Event(), threading.Event()
    mine = runner.submit("mine", _blocking(started, release, [], "mine"), heavy=True, session="me")
    assert started.wait(WAIT)
    assert not one_slot.others_active("me")  # my own job: not somebody else's load
    assert one_slot.others_active("you")
    release.set()
    mine.result(WAIT)
    assert one_slot.others_active("you")  # it entered the queue seconds ago: "me" is still moving sliders
    assert not one_slot.others_active("you", window_s=0.0)


def test_background_work_waits_until_interactive_work_has_stopped() -> None:
    queue = serving.reset_job_queue(1)
    queue.background_after_s = 0.5
    try:
        runner = JobRunner()
        order: list[str] = []
        estimate = runner.submit("estimate", lambda p: order.append("estimate") or "estimate", heavy=True)
        assert estimate.result(WAIT) == "estimate"
        refine = runner.submit("refine", lambda p: order.append("refine") or "refine", heavy=True, background=True)
        threading.Event().wait(0.2)
        assert order == ["estimate"] and not refine.done  # too soon after the estimate
        assert refine.result(WAIT) == "refine"
        assert order == ["estimate", "refine"]
    finally:
        serving.reset_job_queue()


def test_the_project_config_runs_no_full_gc_after_every_script_run() -> None:
    """Streamlit's default collects all generations after every script run: ~0.25 s holding the GIL with a pool
    open, once per slider move and progress poll of every session (bench/sessions.py)."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["address"] == "127.0.0.1"



def test_only_other_sessions_hold_background_work_back() -> None:
    """A lone user's refinement starts right after their estimate; another session's estimate holds it back."""
    queue = serving.reset_job_queue(1)
    queue.background_after_s = 60.0  # longer than this test: only "no other session" lets work start
    try:
        runner = JobRunner()
        assert runner.submit("estimate", lambda p: "e", heavy=True, session="me").result(WAIT) == "e"
        mine = runner.submit("refine", lambda p: "r", heavy=True, background=True, session="me")
        assert mine.result(WAIT) == "r"  # my own estimate does not hold my refinement back
        assert runner.submit("theirs", lambda p: "t", heavy=True, session="you").result(WAIT) == "t"
        held = runner.submit("refine 2", lambda p: "r2", heavy=True, background=True, session="me")
        threading.Event().wait(0.5)
        assert not held.done  # another session was active within the minute
        held.cancel()
    finally:
        serving.reset_job_queue()
