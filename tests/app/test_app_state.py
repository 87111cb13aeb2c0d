"""Session glue: jobs shared between sessions, memoised results, pools by spec, errors that name the spec."""
from __future__ import annotations

import threading

import pytest

from spectral.app_state import Job, JobRunner, Memo, PoolError, Workspace, freeze, get_workspace, open_pool
from spectral.errors import SpectralError


def test_two_sessions_asking_for_the_same_result_share_one_job() -> None:
    runner = JobRunner()
    gate = threading.Event()
    calls = []

    def work(progress):
        calls.append(1)
        progress(1, 2, "half")
        gate.wait(10)
        return 42

    a = runner.submit("k", work)
    b = runner.submit("k", work)
    assert a is b and not a.done
    gate.set()
    assert a.result(10) == 42 and b.result(10) == 42
    assert calls == [1] and a.fraction == 1.0
    c = runner.submit("k", lambda p: 7)  # finished jobs are not reused
    assert c is not a and c.result(10) == 7


def test_job_errors_are_raised_to_the_waiter() -> None:
    job = JobRunner().submit("bad", lambda p: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        job.result(10)
    assert job.failed and "ZeroDivisionError" in job.traceback
    assert Job.completed("x", 3).result() == 3


def test_workspace_memo_is_shared_and_thread_safe(tmp_path) -> None:
    import fake_pool

    ws = Workspace("fake-4", device="cpu", cache_dir=str(tmp_path), pool=fake_pool.make_pool()).open()
    runs = []

    def compute(progress):
        runs.append(1)
        return ws.accuracies("task_arithmetic", {"alpha": 0.5})

    jobs = [ws.compute(("acc", 0.5), compute) for _ in range(4)]
    values = [j.result(60) for j in jobs]
    assert all(v == values[0] for v in values) and len(runs) == 1
    assert ws.compute(("acc", 0.5), compute).done  # memoised: a finished job at once
    # accuracies land in the results store: a second workspace on the same cache reads them back
    ws2 = Workspace("fake-4", device="cpu", cache_dir=str(tmp_path), pool=fake_pool.make_pool()).open()
    assert ws2.accuracies("task_arithmetic", {"alpha": 0.5}) == values[0]
    assert ws2.evaluator.evaluations == 0


def test_memo_is_an_lru() -> None:
    memo = Memo(max_entries=2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1
    memo.put("c", 3)
    assert "b" not in memo and memo.get("a") == 1 and memo.get("c") == 3
    assert freeze({"b": [1, 2], "a": {"x": 0.1}}) == freeze({"a": {"x": 0.1}, "b": (1, 2)})


def test_pool_specs(tmp_path) -> None:
    assert get_workspace("fake-4") is get_workspace(" fake-4 ")
    with pytest.raises(PoolError, match="no pool given"):
        open_pool("  ")
    with pytest.raises(SpectralError, match="missing.yaml"):  # the loaders' named error, or PoolError
        open_pool(str(tmp_path / "missing.yaml"))
    with pytest.raises(PoolError, match="zoo"):
        open_pool("zoo-3")
