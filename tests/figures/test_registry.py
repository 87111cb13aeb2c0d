"""Every registered figure computes and draws on the fake pool; settings documents regenerate the same data; the
builders draw what their tables hold."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from spectral.errors import ParameterError, UnknownMethodError
from spectral.figures import registry
from spectral.figures.export import csv_bytes, load_settings, settings_yaml

QUICK = {
    "rank_sweep": {"fractions": [0.1, 1.0]},
    "alpha_sweep": {"methods": ["task_arithmetic"], "alphas": [0.3, 1.0]},
    "common_frac_sweep": {"fractions": [0.5, 1.0]},
    "ablation": {"select_alpha": False},
}


@pytest.mark.parametrize("name", sorted(registry.FIGURES))
def test_every_figure_computes_and_draws(workspace, name: str) -> None:
    settings = QUICK.get(name, {})
    data = registry.compute_cached(name, workspace, settings)
    assert isinstance(data.table, pd.DataFrame) and len(data.table)
    fig = registry.build(name, data, settings)
    assert isinstance(fig, go.Figure) and len(fig.data) > 0
    # no template of its own: on screen Streamlit's theme applies, the paper template only at export
    assert fig.layout.template == pio.templates[pio.templates.default]


def test_settings_are_checked(workspace) -> None:
    with pytest.raises(ParameterError, match="unknown setting"):
        registry.resolve_settings("spectra", {"layers": "x"})
    with pytest.raises(ParameterError, match="unknown figure"):
        registry.get_kind("nope")
    with pytest.raises(UnknownMethodError):
        registry.compute("spectra", workspace, {"methods": ["nope"]})
    with pytest.raises(ParameterError, match="whole model"):
        registry.compute("spectra", workspace, {"methods": ["ties"]})
    with pytest.raises(ParameterError, match="above its maximum"):
        registry.compute("radar", workspace, {"methods": ["tsv_m"], "params": {"tsv_m": {"k_frac": 2.0}}})
    with pytest.raises(ParameterError, match="outside"):
        registry.compute("rank_sweep", workspace, {"fractions": [0.0, 2.0]})


def test_view_settings_share_the_data(workspace) -> None:
    a = registry.data_key("spectra", registry.resolve_settings("spectra", {"log_y": True}))
    b = registry.data_key("spectra", registry.resolve_settings("spectra", {"log_y": False}))
    c = registry.data_key("spectra", registry.resolve_settings("spectra", {"energy": 0.9}))
    assert a == b != c


def test_settings_document_regenerates_the_same_figure(workspace) -> None:
    settings = {"layer": "1·c_fc", "beta": 0.7}
    data = registry.compute_cached("interpolation", workspace, settings)
    doc = registry.settings_document("interpolation", workspace.spec, settings, columns="two", meta=data.meta)
    loaded = load_settings(settings_yaml(doc))
    assert loaded["export"] == {"columns": "two"} and loaded["derived"]["k_M"] == data.meta["k_M"]
    fig, again, resolved = registry.regenerate(loaded, workspace=workspace)
    assert resolved["beta"] == 0.7
    assert csv_bytes(again.table) == csv_bytes(data.table)
    assert [t.name for t in fig.data] == [t.name for t in registry.build("interpolation", data, settings).data]


def test_radar_traces_follow_the_accuracy_table(workspace) -> None:
    data = registry.compute_cached("radar", workspace, {"methods": ["tsv_m"]})
    fig = registry.build("radar", data, {"methods": ["tsv_m"]})
    names = [t.name for t in fig.data]
    assert names == ["Zero-shot", "TSV-M", "Fine-tuned"]
    ft = data.table[data.table.model == "Fine-tuned"].accuracy
    assert (ft == 100.0).all()  # the fake pool labels each task by its fine-tuned model
    assert list(fig.data[2].r)[:-1] == list(ft)
    summary = data.meta["summary"]
    assert summary[-1]["model"] == "Fine-tuned" and summary[-1]["nai"] == pytest.approx(1.0)


def test_radar_draws_stored_adaptation_results_next_to_the_merges(workspace) -> None:
    from spectral.adapt import AdaptConfig
    from spectral.adapt.session import adaptation_for, evaluate_result, stored_adaptations
    from spectral.adapt.store import adapted_runs, result_ref

    result = adaptation_for(workspace, AdaptConfig(steps=2, select_every=1)).run()
    adapted = evaluate_result(workspace, result)  # % per task, stored
    ref = result_ref(result.run_id, result.selected_step)
    assert list(adapted_runs(stored_adaptations(workspace))["ref"]) == [ref]

    settings = {"methods": ["tsv_m"], "adapted": [ref]}
    data = registry.compute_cached("radar", workspace, settings)
    assert list(dict.fromkeys(data.table.model)) == ["Zero-shot", "TSV-M", "TA+AdaRank", "Fine-tuned"]
    rows = data.table[data.table.model == "TA+AdaRank"].set_index("task").accuracy
    assert rows.to_dict() == pytest.approx(adapted)
    fig = registry.build("radar", data, settings)
    styles = {t.name: t.line.dash for t in fig.data}
    assert styles["TA+AdaRank"] == "dashdot" and styles["TSV-M"] == "solid"

    # the exported settings regenerate it from the results store, without re-running anything
    doc = registry.settings_document("radar", workspace.spec, settings, meta=data.meta)
    _, again, resolved = registry.regenerate(load_settings(settings_yaml(doc)), workspace=workspace)
    assert resolved["adapted"] == [ref] and csv_bytes(again.table) == csv_bytes(data.table)

    with pytest.raises(ParameterError, match="no stored adaptation result 'nope@3'"):
        registry.compute("radar", workspace, {"methods": ["tsv_m"], "adapted": ["nope@3"]})
    with pytest.raises(ParameterError, match="must list"):
        registry.compute("radar", workspace, {"methods": ["tsv_m"], "adapted": ref})
