"""Plotly builders of the adaptation views."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest

from spectral.adapt import AdaptConfig, run_adaptation
from spectral.adapt.tables import kept_rank_table, lambda_table
from spectral.figures import adapt as fig


@pytest.fixture
def result(engine, synthetic_pool, tmp_path):
    cfg = AdaptConfig(base="cart", steps=3, lr=0.5, select_every=1, eval_every=1, selection="min_entropy")
    return run_adaptation(engine, synthetic_pool, cfg, cache_dir=tmp_path)


def test_mask_figure_panels_and_states(result):
    keys = list(result.masks)[:3]
    f = fig.mask_figure(result.masks, result.task_names, layers=keys)
    heat = [t for t in f.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 3 and list(heat[0].y) == result.task_names
    assert [list(row) for row in heat[0].z] == result.masks[keys[0]].int().tolist()
    assert {t.name for t in f.data if isinstance(t, go.Scatter)} == {"kept", "pruned"}
    # changes: a synthetic mask with one component switched on and one off
    init = {keys[0]: result.initial_masks[keys[0]]}
    mask = init[keys[0]].clone()
    mask[0, 0] = ~mask[0, 0]
    mask[1, -1] = ~mask[1, -1]
    f = fig.mask_figure({keys[0]: mask}, result.task_names, initial=init, show_changes=True)
    z = f.data[0].z
    assert z[0][0] == 3 and z[1][-1] == 2  # kept initially, pruned now = switched off; and the reverse
    assert len(fig.mask_figure({}, result.task_names).layout.annotations) == 1


def test_kept_rank_lambda_and_trace_figures(result):
    table = kept_rank_table(result)
    f = fig.kept_rank_figure(table)
    assert list(f.data[0].x) == result.task_names and len(f.data[0].y) == len(result.masks)
    assert len(fig.kept_rank_figure(table, value="kept").data) == 1
    lines = fig.kept_rank_lines_figure(table, kind="in_proj")
    assert [t.name for t in lines.data] == result.task_names
    lam = fig.lambda_figure(lambda_table(result))
    assert len(lam.data[0].y) == len(result.lambda_keys)
    ent = fig.entropy_trace_figure(result.traces, selected_step=result.selected_step)
    assert [t.name for t in ent.data] == ["training batch entropy (Σ tasks)", "selection-set entropy (Σ tasks)"]
    assert len(fig.entropy_trace_figure(result.traces, per_task=True).data) == len(result.task_names) + 1
    acc = fig.accuracy_trace_figure(result.traces)
    assert "uses labels" in acc.layout.title.text and acc.data[-1].name == "mean"
