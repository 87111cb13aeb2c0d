"""A plugin loaded through SPECTRAL_PLUGINS gets its sliders in the merge lab; a broken one is reported by name on
the Overview page and breaks nothing."""
from __future__ import annotations

import sys

import pytest
from app_helpers import APP, chart_data
from streamlit.testing.v1 import AppTest

from spectral import plugins

TIMEOUT = 120

PLUGIN = '''
import spectral
from spectral import Method, Param


def shrunk_sum(layer, *, alpha=0.3, shrink=0.5):
    return alpha * shrink * layer.task_matrices.sum(0)


spectral.register_method(Method(
    name="shrunk_sum", display_name="Shrunk sum", paper="test plugin", layer_fn=shrunk_sum, non_matrix="sum",
    params=(Param("alpha", 0.3, "float", 0.0, 3.0, 0.05), Param("shrink", 0.5, "float", 0.0, 1.0, 0.05)),
))
'''


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    (tmp_path / "app_plugin_ok.py").write_text(PLUGIN)
    (tmp_path / "app_plugin_broken.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPECTRAL_PLUGINS", "app_plugin_ok,app_plugin_broken")
    yield
    for name in list(plugins.load_plugins()):
        plugins.unregister_method(name)
    for source in ("app_plugin_ok", "app_plugin_broken"):
        plugins._failures.pop(source, None)
        plugins._attempted.discard(source)
        sys.modules.pop(source, None)


def test_plugin_slider_in_merge_lab(plugin_env) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Shrunk sum" in at.multiselect(key="ml_methods").options
    at.multiselect(key="ml_methods").set_value(["task_arithmetic", "shrunk_sum"]).run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    keys = {s.key for s in at.slider}
    assert {"ml_shrunk_sum_alpha", "ml_shrunk_sum_shrink"} <= keys
    traces = {t["name"]: t["r"] for t in chart_data(at, "radar")}
    assert "Shrunk sum" in traces
    at.slider(key="ml_shrunk_sum_shrink").set_value(1.0).run()
    assert not at.exception
    after = {t["name"]: t["r"] for t in chart_data(at, "radar")}
    # shrink = 1 at α = 0.3 is Task Arithmetic at α = 0.3 exactly
    assert after["Shrunk sum"] == after["Task Arithmetic"]


def test_broken_plugin_is_reported_on_the_overview(plugin_env) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert "app_plugin_broken" in warnings and "broken on purpose" in warnings
    table = at.dataframe[1].value
    assert "shrunk_sum" in set(table["name"]) and "task_arithmetic" in set(table["name"])
    assert set(table[table["name"] == "shrunk_sum"]["source"]) == {"plugin: app_plugin_ok"}
