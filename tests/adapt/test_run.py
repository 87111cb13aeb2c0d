"""The adaptation loop: entropy goes down, stop/resume is exact, selection never reads labels, background runs."""
from __future__ import annotations

import threading

import pytest
import torch

from synthetic import SyntheticPool, make_engine
from spectral.adapt import AdaptConfig, Adaptation, RunRegistry, run_adaptation
from spectral.adapt.checkpoint import read_document
from spectral.adapt.errors import AdaptError
from spectral.errors import ParameterError


def _equal_snapshots(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("method,base,mode", [
    ("adarank", "task_arithmetic", "layer"),
    ("adarank", "cart", "frozen"),
    ("adamerging", "task_arithmetic", "task"),
    ("adamerging", "task_arithmetic", "layer"),
])
def test_a_few_steps_lower_the_entropy(engine, synthetic_pool, tmp_path, method, base, mode):
    cfg = AdaptConfig(method=method, base=base, lambda_mode=mode, steps=6, lr=2e-2, select_every=6,
                      select_images=40)
    result = run_adaptation(engine, synthetic_pool, cfg, cache_dir=tmp_path)
    sel = result.traces["select_entropy"]
    assert result.traces["select_step"] == [0, 6]
    assert sel[-1] < sel[0]
    assert result.step == 6 and result.finished and result.seconds_per_step is not None
    assert len(result.traces["entropy"]) == 6
    assert set(result.state_dict) == set(engine.taskset.base)
    if method == "adamerging":
        assert result.masks == {}
    else:
        assert set(result.masks) == set(result.initial_masks) and result.masks


def test_stop_then_resume_continues_identically(synthetic_pool, tmp_path):
    cfg = AdaptConfig(base="task_arithmetic", steps=9, lr=5e-2, checkpoint_every=4, select_every=3,
                      selection="min_entropy")
    straight = Adaptation(make_engine(synthetic_pool, tmp_path / "a"), synthetic_pool, cfg, cache_dir=tmp_path / "a")
    full = straight.run()

    stop = threading.Event()
    first = Adaptation(make_engine(synthetic_pool, tmp_path / "b"), synthetic_pool, cfg, cache_dir=tmp_path / "b")
    assert first.run_id == straight.run_id
    part = first.run(stop=stop, progress=lambda i, n, text: stop.set() if first.step == 5 else None)
    assert part.step == 5 and not part.finished and first.state == "stopped"
    assert read_document(first.checkpoint_path)["step"] == 5

    # a new process: nothing in memory but the checkpoint
    second = Adaptation(make_engine(synthetic_pool, tmp_path / "b"), synthetic_pool, cfg, cache_dir=tmp_path / "b")
    second.prepare()
    assert second.step == 5
    _equal_snapshots(second.merge.snapshot(), first.merge.snapshot())
    for a, b in zip(second._optimizer.state.values(), first._optimizer.state.values()):
        for name in a:
            assert torch.equal(a[name], b[name])
    resumed = second.run()
    assert resumed.step == 9 and resumed.finished
    _equal_snapshots(second.merge.snapshot(), straight.merge.snapshot())
    for key in ("step", "entropy", "task_entropy", "select_step", "select_entropy"):
        assert resumed.traces[key] == full.traces[key], key
    assert resumed.selected_step == full.selected_step
    _equal_snapshots(resumed.state_dict, full.state_dict)


def test_selection_never_uses_labels(tmp_path):
    """Shuffling the test labels changes the (display-only) accuracy trace and nothing else."""
    results = []
    for shuffle in (False, True):
        pool = SyntheticPool(3, shuffle_labels=shuffle)
        cfg = AdaptConfig(base="task_arithmetic", steps=6, lr=5e-2, select_every=2, eval_every=2,
                          selection="min_entropy")
        results.append(run_adaptation(make_engine(pool, tmp_path / str(shuffle)), pool, cfg,
                                      cache_dir=tmp_path / str(shuffle)))
    a, b = results
    assert a.traces["test_accuracy"] != b.traces["test_accuracy"]
    assert a.selected_step == b.selected_step
    for key in ("entropy", "select_entropy"):
        assert a.traces[key] == b.traces[key]
    _equal_snapshots(a.masks, b.masks)
    assert torch.equal(a.lambdas, b.lambdas)
    _equal_snapshots(a.state_dict, b.state_dict)


def test_selection_rules(engine, synthetic_pool, tmp_path):
    cfg = AdaptConfig(steps=4, lr=5e-2, select_every=1, selection="min_entropy")
    run = Adaptation(engine, synthetic_pool, cfg, cache_dir=tmp_path)
    best = run.run()
    sel = best.traces["select_entropy"]
    assert best.selected_step == best.traces["select_step"][sel.index(min(sel))]
    last = Adaptation(engine, synthetic_pool, AdaptConfig(steps=4, lr=5e-2, select_every=1, selection="last"),
                      cache_dir=tmp_path)
    assert last.run_id == run.run_id  # the rule is not part of the run: the same checkpoint serves both
    assert last.run().selected_step == 4


def test_run_id_and_config_validation(engine, synthetic_pool, tmp_path):
    a = Adaptation(engine, synthetic_pool, AdaptConfig(steps=3), cache_dir=tmp_path)
    same = Adaptation(engine, synthetic_pool, AdaptConfig(steps=50, eval_every=5), cache_dir=tmp_path)
    assert a.run_id == same.run_id
    assert a.run_id != Adaptation(engine, synthetic_pool, AdaptConfig(lr=1e-2), cache_dir=tmp_path).run_id
    assert a.run_id != Adaptation(engine, synthetic_pool, AdaptConfig(base="cart"), cache_dir=tmp_path).run_id
    assert AdaptConfig.from_dict(AdaptConfig(betas=[0.8, 0.9]).to_dict()) == AdaptConfig(betas=(0.8, 0.9))
    for bad in ({"method": "x"}, {"base": "tsv_m"}, {"lambda_mode": "x"}, {"selection": "best_accuracy"},
                {"method": "adamerging", "lambda_mode": "frozen"}, {"batch_size": 0}, {"lr": 0.0}):
        with pytest.raises(ParameterError):
            AdaptConfig(**bad)
    assert AdaptConfig().label == "TA+AdaRank"
    assert AdaptConfig(base="cart", method="adamerging", lambda_mode="task").label == "CART+AdaMerging (task-wise)"


def test_foreign_checkpoint_is_refused(engine, synthetic_pool, tmp_path):
    a = Adaptation(engine, synthetic_pool, AdaptConfig(steps=1), cache_dir=tmp_path)
    a.run()
    b = Adaptation(engine, synthetic_pool, AdaptConfig(steps=1, lr=0.5), cache_dir=tmp_path)
    b.checkpoint_path.write_bytes(a.checkpoint_path.read_bytes())
    with pytest.raises(AdaptError):
        b.prepare()
    b.checkpoint_path.write_bytes(b"garbage")
    with pytest.raises(AdaptError):
        Adaptation(engine, synthetic_pool, AdaptConfig(steps=1, lr=0.5), cache_dir=tmp_path).prepare()


def test_registry_runs_in_background_stops_and_resumes(engine, synthetic_pool, tmp_path):
    registry = RunRegistry()
    cfg = AdaptConfig(steps=30, checkpoint_every=100)
    run = Adaptation(engine, synthetic_pool, cfg, cache_dir=tmp_path)
    done = []
    handle = registry.start(run, on_done=done.append)
    assert registry.start(Adaptation(engine, synthetic_pool, cfg, cache_dir=tmp_path)) is handle  # one per run
    handle.stop()
    handle.join(60)
    status = handle.status()
    assert not handle.running and status["state"] in ("stopped", "finished") and status["error"] is None
    assert done and done[0].step == status["step"]
    handle = registry.start(run, steps=32, on_done=done.append)
    handle.join(120)
    assert handle.status()["state"] == "finished" and handle.result.step == 32 and len(done) == 2
    assert registry.get(run.run_id) is handle and registry.handles() == [handle]


def test_registry_reports_errors(synthetic_pool, tmp_path):
    class Broken(SyntheticPool):
        def dataset(self, task, split):
            raise RuntimeError("no data here")

    pool = Broken(3)
    engine = make_engine(pool, tmp_path)
    handle = RunRegistry().start(Adaptation(engine, pool, AdaptConfig(steps=2), cache_dir=tmp_path))
    handle.join(60)
    assert handle.status()["state"] == "failed" and "no data here" in handle.status()["error"]


def test_pool_tensors_made_in_inference_mode_are_fine(tmp_path):
    """Evaluations run under torch.inference_mode and pools cache what they load: heads, images and cached SVD
    factors may be inference tensors by the time an adaptation starts."""
    with torch.inference_mode():
        pool = SyntheticPool(3, seed=5)
        engine = make_engine(pool, tmp_path)
        engine.build_cache()
        for key in engine.taskset.matrix_keys:
            engine.layer(key).centered_svd()
    for base in ("task_arithmetic", "cart"):
        result = run_adaptation(engine, pool, AdaptConfig(base=base, steps=2, eval_every=1), cache_dir=tmp_path)
        assert result.step == 2


def test_a_bounded_registry_waits_for_a_slot_and_stops_when_its_session_closes(engine, synthetic_pool, tmp_path,
                                                                               monkeypatch):
    """Issue 26: the dashboard's runs share the server's job queue; a run whose sessions all closed stops."""
    import threading

    from spectral import serving
    from spectral.app_state import JobRunner

    queue = serving.reset_job_queue(1)
    alive = {"tab": True}
    monkeypatch.setattr(serving, "SESSION_GRACE_S", 0.0)
    before = serving._SESSION_PROBE
    serving.set_session_probe(lambda sid: alive.get(sid, False))
    try:
        started, release = threading.Event(), threading.Event()
        blocker = JobRunner().submit("sweep", lambda p: (started.set(), release.wait(60)), heavy=True)
        assert started.wait(60)
        registry = RunRegistry(bounded=True)
        run = Adaptation(engine, synthetic_pool, AdaptConfig(steps=1000, checkpoint_every=10_000), cache_dir=tmp_path)
        handle = registry.start(run, session="tab")
        for _ in range(600):
            if queue.ahead_of(handle) == 1:
                break
            threading.Event().wait(0.05)
        assert queue.ahead_of(handle) == 1 and "1 job ahead" in handle.status()["text"]
        assert run.step == 0  # waits for the slot
        release.set()
        blocker.result(60)
        for _ in range(1200):  # it runs once the slot is free
            if run.step > 0:
                break
            threading.Event().wait(0.05)
        assert run.step > 0
        alive["tab"] = False  # the only session watching it closed
        handle.join(120)
        assert not handle.running and handle.status()["error"] is None and run.step < 1000  # stopped early
        assert queue.snapshot() == ([], [])
    finally:
        serving.set_session_probe(before)
        serving.reset_job_queue()
