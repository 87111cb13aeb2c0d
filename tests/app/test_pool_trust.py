"""The sidebar's trust control and what a failed pool open shows (issue 11 items 1 and 5).

A pool of the papers' pickled checkpoints is refused with the refusal and the control; ticking the control opens it.
A failed open is remembered for the session: other pages show the same error without opening again, until the
user asks to retry. Runs on tiny open_clip checkpoints written to tmp_path (a second or two per run)."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch
from app_helpers import APP
from streamlit.testing.v1 import AppTest

sys.path.append(str(Path(__file__).resolve().parents[1] / "checkpoints"))  # after tests/app: its conftest wins
import ckpt_writers as W  # noqa: E402

import spectral.app_state as app_state  # noqa: E402
from pages import _ui  # noqa: E402

TIMEOUT = 120
TASKS = ("MNIST", "SVHN")


@pytest.fixture(autouse=True)
def _no_legacy_rerun(monkeypatch):
    """AppTest resets the legacy-pages flag on every run (see test_adaptation_page.py): skip that rerun, so one
    ``at.run()`` is one script run and button clicks are not lost."""
    monkeypatch.setattr(_ui, "leave_legacy_navigation", lambda: None, raising=False)


@pytest.fixture(scope="module")
def pickled_pool(tmp_path_factory) -> Path:
    """The task_vectors layout: ``zeroshot.pt`` and ``<Task>/finetuned.pt``, all pickled ImageEncoder objects."""
    root = tmp_path_factory.mktemp("pickled")
    W.register_tiny_configs(root / "configs")
    base = W.make_clip(0)
    folder = root / "checkpoints" / "tiny"
    folder.mkdir(parents=True)
    W.write_task_vectors_pickle(base, folder / "zeroshot.pt")
    for seed, task in enumerate(TASKS, start=1):
        (folder / task).mkdir()
        W.write_task_vectors_pickle(W.finetune(base, seed), folder / task / "finetuned.pt")
        W.write_head_pickle(torch.randn(5, 16), folder / f"head_{task}.pt")
    return folder


@pytest.fixture
def corrupt_pool(tmp_path) -> Path:
    rng = random.Random(7)
    folder = tmp_path / "corrupt"
    for name in ("zeroshot.pt", *(f"{t}/finetuned.pt" for t in TASKS)):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"z" + bytes(rng.getrandbits(8) for _ in range(2047)))
    return folder


def _app(monkeypatch, pool: Path, tmp_path: Path) -> AppTest:
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", str(pool))
    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path / "cache"))
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_pickled_pool_is_refused_then_opens_once_trusted(monkeypatch, tmp_path, pickled_pool) -> None:
    at = _app(monkeypatch, pickled_pool, tmp_path).run()
    assert not at.exception, [e.value for e in at.exception]
    control = at.sidebar.checkbox(key="trust_pickle")
    assert control.label == _ui.TRUST_LABEL and control.value is False  # off by default
    assert any("Unpickling runs code" in c.value for c in at.sidebar.caption)  # the one-line warning
    errors = _errors(at)
    assert len(errors) == 1 and str(pickled_pool) in errors[0] and "pickled Python object" in errors[0]
    assert any(_ui.TRUST_LABEL in i.value for i in at.info)  # the refusal points to the control
    assert not at.metric  # the overview's pool metrics are not drawn

    at.sidebar.checkbox(key="trust_pickle").check().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not _errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tasks"] == str(len(TASKS))
    assert any(f"{len(TASKS)} tasks" in c.value for c in at.sidebar.caption)

    # switching the control off again refuses again (another workspace: trust is never shared across the switch)
    at.sidebar.checkbox(key="trust_pickle").uncheck().run()
    assert any("pickled Python object" in e for e in _errors(at))


def test_trust_is_not_read_from_the_url(monkeypatch, tmp_path, pickled_pool) -> None:
    at = _app(monkeypatch, pickled_pool, tmp_path)
    at.query_params = {"trust_pickle": "true"}
    at.run()
    assert at.sidebar.checkbox(key="trust_pickle").value is False
    assert any("pickled Python object" in e for e in _errors(at))


def test_corrupt_pool_is_reported_as_corrupt_not_as_a_pickle(monkeypatch, tmp_path, corrupt_pool) -> None:
    at = _app(monkeypatch, corrupt_pool, tmp_path).run()
    errors = _errors(at)
    assert len(errors) == 1
    assert str(corrupt_pool / "zeroshot.pt") in errors[0] and "not a checkpoint in any format" in errors[0]
    assert "safetensors" in errors[0] and "torch.save zip archive" in errors[0]
    assert "Trust pickled" not in errors[0] and not any(_ui.TRUST_LABEL in i.value for i in at.info)


def test_a_failed_open_is_remembered_for_the_session(monkeypatch, tmp_path, corrupt_pool) -> None:
    calls: list[str] = []
    real_open = app_state.open_pool

    def counting_open(spec, **kwargs):
        calls.append(spec)
        return real_open(spec, **kwargs)

    monkeypatch.setattr(app_state, "open_pool", counting_open)
    at = _app(monkeypatch, corrupt_pool, tmp_path).run()
    assert len(calls) == 1 and _errors(at) and at.button(key="retry_pool")
    for page in ("pages/spectra.py", "pages/task_vectors.py", "pages/home.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("not a checkpoint in any format" in e for e in _errors(at)), page
    assert len(calls) == 1  # shown again on every page, never reopened

    at.button(key="retry_pool").click().run()  # the user asks: it is opened again, once
    assert len(calls) == 2 and _errors(at)
    at.run()
    assert len(calls) == 2
