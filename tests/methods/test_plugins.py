"""Plugins: the guide's example (docs/plugins.md) runs as written; broken plugins are reported by name and never raise."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import spectral
from helpers import make_vit_state_dicts
from spectral import Engine, Method, Param, TaskSet
from spectral import plugins
from spectral.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]


def readme_plugin_example() -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    match = re.search(r"<!-- plugin-example -->\s*```python[^\n]*\n(.*?)```", text, re.S)
    assert match, "docs/plugins.md lost its plugin example"
    return match.group(1)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(plugins.load_plugins()):
        plugins.unregister_method(name)
    for source in list(plugins._failures):
        plugins._failures.pop(source)
    plugins._attempted.clear()
    for mod in ("my_merges", "broken_import", "bad_params", "half_good"):
        sys.modules.pop(mod, None)


def test_readme_example_registers_a_working_method(plugin_dir, monkeypatch):
    (plugin_dir / "my_merges.py").write_text(readme_plugin_example())
    monkeypatch.setenv("SPECTRAL_PLUGINS", "my_merges")
    assert "spectral_power" in spectral.list_methods()
    assert plugins.plugin_source("spectral_power") == "my_merges"
    method = spectral.get_method("spectral_power")
    assert method.param_names == ("alpha", "power")

    g = torch.Generator().manual_seed(0)
    tm = torch.randn(3, 12, 8, generator=g, dtype=torch.float64)
    # power = 1 is Task Arithmetic; power = 0 flattens every singular value to σ₁
    torch.testing.assert_close(spectral.merge_layer("spectral_power", tm, alpha=0.4, power=1.0),
                               spectral.merge_layer("task_arithmetic", tm, alpha=0.4))
    flat = torch.linalg.svdvals(spectral.merge_layer("spectral_power", tm, alpha=1.0, power=0.0))
    torch.testing.assert_close(flat, flat[0].expand_as(flat))
    with pytest.raises(ParameterError, match="power"):
        spectral.merge_layer("spectral_power", tm, power=2.0)

    # the engine hands it the cached factors; non-matrix parameters follow its declared rule
    base, ft = make_vit_state_dicts(num_tasks=3, seed=4)
    engine = Engine(TaskSet(base, ft), cache_dir=plugin_dir / "cache", device="cpu")
    merged = engine.merge("spectral_power", alpha=0.5, power=1.0)
    reference = engine.merge("task_arithmetic", alpha=0.5)
    for key in engine.taskset.keys:
        torch.testing.assert_close(merged[key], reference[key], rtol=1e-4, atol=1e-5)


def test_cli_lists_plugin_methods_and_reports_broken_ones(plugin_dir):
    (plugin_dir / "my_merges.py").write_text(readme_plugin_example())
    (plugin_dir / "broken_import.py").write_text("import not_a_module_anywhere\n")
    env = {"PYTHONPATH": f"{plugin_dir}:{ROOT}", "SPECTRAL_PLUGINS": "my_merges, broken_import, no_such_plugin",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "spectral", "methods"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^spectral_power\s+Spectral power .*\[plugin: my_merges\]", out.stdout, re.M)
    assert "power=0.5 [0.0, 1.0]" in out.stdout
    assert re.search(r"plugin not loaded: broken_import: ModuleNotFoundError", out.stderr)
    assert re.search(r"plugin not loaded: no_such_plugin: ModuleNotFoundError", out.stderr)


BAD_PARAMS = '''
import spectral
from spectral import Method, Param

def f(layer, *, alpha=1.0, rho=0.5):
    return alpha * layer.task_matrices.sum(0)

spectral.register_method(Method(name="good_one", display_name="Good", paper="-", params=(), layer_fn=f))
spectral.register_method(Method(name="bad_params", display_name="Bad", paper="-", layer_fn=f,
                                params=(Param("rho", 5.0, "float", 0.0, 1.0),)))
'''


def test_bad_params_are_reported_and_the_plugin_is_taken_back(plugin_dir, monkeypatch):
    (plugin_dir / "half_good.py").write_text(BAD_PARAMS)
    monkeypatch.setenv("SPECTRAL_PLUGINS", "half_good")
    names = spectral.list_methods()
    assert "bad_params" not in names and "good_one" not in names  # nothing half-registered
    failures = {f.source: f.error for f in plugins.plugin_failures()}
    assert "half_good" in failures and "rho" in failures["half_good"] and "5.0" in failures["half_good"]
    assert "task_arithmetic" in names


@pytest.mark.parametrize("method,message", [
    (Method(name="Bad Name", display_name="x", paper="-", layer_fn=lambda layer, *, alpha: 0), "lower_snake_case"),
    (Method(name="no_fn", display_name="x", paper="-"), "exactly one of layer_fn"),
    (Method(name="task_arithmetic", display_name="x", paper="-", layer_fn=lambda layer, *, alpha: 0), "built-in"),
    (Method(name="no_range", display_name="x", paper="-", params=(Param("k", 1.0),),
            layer_fn=lambda layer, *, alpha, k: 0), "range"),
    (Method(name="no_kwarg", display_name="x", paper="-", params=(Param("k", 0.5, "float", 0.0, 1.0),),
            layer_fn=lambda layer, *, alpha: 0), "does not accept"),
    (Method(name="bad_choice", display_name="x", paper="-", params=(Param("c", "z", "choice", choices=("a",)),),
            layer_fn=lambda layer, *, alpha, c: 0), "default"),
])
def test_register_method_rejects_bad_declarations(method, message):
    with pytest.raises(plugins.PluginError, match=message):
        spectral.register_method(method)
    assert spectral.get_method("task_arithmetic").display_name == "Task Arithmetic"


def test_plugin_results_are_stored_under_its_name(plugin_dir, monkeypatch, micro_pool, tmp_path):
    from spectral.eval.evaluate import Evaluator
    from spectral.eval.results import ResultsStore

    (plugin_dir / "my_merges.py").write_text(readme_plugin_example())
    monkeypatch.setenv("SPECTRAL_PLUGINS", "my_merges")
    ev = Evaluator(micro_pool, store=tmp_path / "results.sqlite", device="cpu", version="test",
                   cache_dir=tmp_path / "cache")
    accs = ev.merged("spectral_power", alpha=0.3, power=1.0)
    ta = ev.merged("task_arithmetic", alpha=0.3)
    assert accs == pytest.approx(ta, abs=0.02)  # power = 1 is Task Arithmetic (float32 rounding aside)
    stored = ResultsStore(tmp_path / "results.sqlite").to_dataframe(method="spectral_power")
    assert len(stored) == len(micro_pool.task_names) and set(stored.method) == {"spectral_power"}
