"""The dashboard with $SPECTRAL_RAY_ADDRESS set: the sidebar shows the cluster, the Sweeps page computes its
points on it (rows stored by the app, with the node each ran on)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a cluster, worker processes importing torch and a full page run

ROOT = Path(__file__).resolve().parents[2]
APP_TESTS = ROOT / "tests" / "app"


@pytest.fixture(scope="module")
def fake_pool_everywhere():
    """The dashboard tests' fake pool, openable by name on the workers too (set before the cluster connects)."""
    saved = {k: os.environ.get(k) for k in ("SPECTRAL_POOL_FACTORIES", "PYTHONPATH")}
    os.environ["SPECTRAL_POOL_FACTORIES"] = "fake-4=fake_pool:make_pool"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(APP_TESTS), saved["PYTHONPATH"]) if p)
    sys.path.insert(0, str(APP_TESTS))
    yield
    sys.path.remove(str(APP_TESTS))
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_sweeps_page_runs_on_the_cluster(fake_pool_everywhere, cluster, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from spectral.eval.results import ResultsStore

    import streamlit as st

    from spectral.app_state import _WORKSPACES

    # a fresh workspace on this module's cache: earlier page tests in this process memoised the same sweeps of
    # fake-4 (the page then has nothing to compute and offers no cluster run) and kept another results store
    for key in [k for k in _WORKSPACES if k[0] == "fake-4"]:
        _WORKSPACES.pop(key)
    st.cache_resource.clear()
    monkeypatch.setenv("SPECTRAL_DEFAULT_POOL", "fake-4")
    monkeypatch.setenv("SPECTRAL_RAY_ADDRESS", cluster.address)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240).run()
    for key, value in {"sw_rank_points": 3, "sw_alpha_points": 3, "sw_common_points": 3,
                       "sw_ablation_select": False}.items():
        at.session_state[key] = value
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert "Ray cluster" in [h.value for h in at.sidebar.subheader]
    assert any("2 nodes" in c.value and cluster.address in c.value for c in at.sidebar.caption)
    assert [t.label for t in at.toggle if t.label == "Run on the Ray cluster"]

    rows = ResultsStore(Path(os.environ["SPECTRAL_CACHE_DIR"]) / "results.sqlite").to_dataframe()
    on_cluster = rows[rows["node"] != ""].drop_duplicates("run")
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(on_cluster) >= 3 * 4 and set(on_cluster["node"]) <= alive  # at least the rank sweep's TSV-C points
    assert set(on_cluster[on_cluster["method"] == "tsv_c"]["split"]) == {"test"}
