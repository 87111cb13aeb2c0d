"""spectral.analysis against the metrics computed directly from the task matrices (no cached factors)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import spectral
from spectral import analysis
from spectral.errors import ParameterError
from spectral.metrics import default_sti_rank, effective_rank, merged_rank


def test_layers_and_labels(workspace) -> None:
    table = analysis.layers(workspace.taskset)
    assert list(table.key) == workspace.taskset.matrix_keys
    assert list(table.label[:3]) == ["pos_emb", "proj", "0·in_proj"]
    assert analysis.resolve_layer(workspace.taskset, None).endswith("resblocks.0.attn.in_proj_weight")
    assert analysis.resolve_layer(workspace.taskset, "1·c_fc").endswith("resblocks.1.mlp.c_fc.weight")
    assert analysis.resolve_layer(workspace.taskset, 1) == "visual.proj"
    with pytest.raises(ParameterError, match="no matrix layer"):
        analysis.resolve_layer(workspace.taskset, "7·c_fc")


def test_norms_and_cosine(workspace) -> None:
    ts = workspace.taskset
    norms = analysis.task_vector_norms(workspace.engine)
    key = ts.matrix_keys[3]
    direct = torch.linalg.matrix_norm(ts.task_matrices(key), dim=(-2, -1)).double()
    got = norms[norms.key == key].norm.to_numpy()
    assert got == pytest.approx(direct.numpy(), rel=1e-6)
    cos = analysis.cosine_similarity(workspace.engine)
    flat = torch.cat([ts.task_matrices(k).reshape(ts.num_tasks, -1).double() for k in ts.keys], 1)
    flat = torch.nn.functional.normalize(flat, dim=1)
    assert cos.to_numpy() == pytest.approx((flat @ flat.T).numpy(), abs=1e-9)
    summary = analysis.task_summary(workspace.engine)
    assert list(summary.task) == ts.task_names and (summary.mean_effective_rank > 0).all()


def test_spectra_match_direct_merges(workspace) -> None:
    ts = workspace.taskset
    key = analysis.resolve_layer(ts, "1·out_proj")
    table = analysis.layer_spectra(workspace.engine, key, methods=("tsv_m", "iso_cts"),
                                   params={"iso_cts": {"common_frac": 0.6}})
    tm = ts.task_matrices(key)
    direct = torch.linalg.svdvals(spectral.merge_layer("iso_cts", tm, alpha=1.5, common_frac=0.6).double())
    got = table[table.source == "Iso-CTS"].sigma.to_numpy()
    assert got == pytest.approx(direct.numpy(), rel=1e-4, abs=1e-6)
    task0 = table[table.source == ts.task_names[0]]
    assert task0.sigma.to_numpy() == pytest.approx(torch.linalg.svdvals(tm[0].double()).numpy(), rel=1e-4, abs=1e-7)
    assert int(task0.effective_rank.iloc[0]) == effective_rank(tm[0], energy=0.95)
    assert task0.energy.iloc[-1] == pytest.approx(1.0)


def test_interpolation_endpoints(workspace) -> None:
    ts = workspace.taskset
    key = ts.matrix_keys[2]
    table = analysis.interpolation(workspace.engine, key, betas=(0.0, 1.0), eps=0.05)
    S = torch.linalg.svdvals(ts.task_matrices(key).sum(0).double())
    ta = table[table.beta == 0.0]
    assert ta.sigma.to_numpy() == pytest.approx(S.numpy(), rel=1e-4)
    assert int(ta.k_M.iloc[0]) == merged_rank(S, 0.05)
    iso = table[table.beta == 1.0].sigma.to_numpy()
    assert iso == pytest.approx([float(S.mean())] * len(iso), rel=1e-4)
    with pytest.raises(ParameterError):
        analysis.interpolation(workspace.engine, key, betas=(1.5,))


def test_sti_per_layer_matches_the_metric(workspace) -> None:
    ts = workspace.taskset
    table = analysis.sti_per_layer(workspace.engine)
    for key in ts.matrix_keys[:3]:
        tm = ts.task_matrices(key)
        k = default_sti_rank(min(tm.shape[-2:]), ts.num_tasks)
        row = table[table.key == key].iloc[0]
        assert row.k == k
        assert row.sti == pytest.approx(spectral.sti(tm, k=k), rel=1e-4)
    grid = analysis.sti_grid(table)
    assert list(grid.columns) == ["in_proj", "out_proj", "c_fc", "c_proj", "other"]
    assert "block 1" in grid.index and "pos_emb" in grid.index


def test_sti_blocks_and_zoom(workspace) -> None:
    blocks = analysis.sti_block_matrices(workspace.engine, None, k_frac=0.25)
    k = blocks.attrs["k"]
    assert k == 8
    uu = blocks[blocks.matrix == "UᵀU"]
    diag = uu[(uu.row_task == uu.col_task) & (uu.row == uu.col)]
    assert diag.value.to_numpy() == pytest.approx(1.0, abs=1e-5)  # float32 factors
    pair = analysis.block_pair(blocks, "VᵀV", "scenes", "textures")
    assert pair.shape == (k, k)


def test_sti_after_tsv_m_vanishes(workspace) -> None:
    table = analysis.sti_before_after(workspace.engine)
    assert (table.before > 0).all()
    assert table.after.max() < 1e-6 * table.before.min()


def test_sar_matrix_and_to_merge(workspace) -> None:
    sar = analysis.sar_avg_matrix(workspace.engine)
    assert sar.shape == (4, 4) and ((sar.to_numpy() >= 0) & (sar.to_numpy() <= 1)).all()
    ts = workspace.taskset
    # SAR against Task Arithmetic through cached sum factors equals the metric on explicit merges
    direct = [spectral.sar(ts.task_matrices(k)[0], ts.task_matrices(k).sum(0), ts.task_matrices(k).sum(0))
              for k in ts.matrix_keys]
    to_ta = analysis.sar_to_merge(workspace.engine, "task_arithmetic")
    assert to_ta.iloc[0] == pytest.approx(sum(direct) / len(direct), rel=1e-5)
    to_tsv = analysis.sar_to_merge(workspace.engine, "tsv_m")
    assert len(to_tsv) == 4 and to_tsv.between(0, 1).all()


def test_accuracy_table_and_alignment() -> None:
    zs = {"a": 40.0, "b": 50.0}
    ft = {"a": 90.0, "b": 100.0}
    merged = {"M": {"a": 65.0, "b": 80.0}}
    table = analysis.accuracy_table(merged, zs, ft)
    row = table[(table.model == "M") & (table.task == "a")].iloc[0]
    assert row.normalised == pytest.approx(65 / 90) and row.nai == pytest.approx(0.5)
    summary = analysis.accuracy_summary(table)
    assert list(summary.model) == ["Zero-shot", "M", "Fine-tuned"]
    points, corr = analysis.alignment_points({"M": pd.Series({"a": 0.8, "b": 0.9})}, table)
    assert len(points) == 2 and corr["M"] == pytest.approx(1.0)
    points, corr = analysis.alignment_points({"M": pd.Series({"a": 0.8})}, table)
    assert math.isnan(corr["M"])
