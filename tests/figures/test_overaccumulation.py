"""The over-accumulation view (SVC): its tables equal the SVC math on the layer, and it exports like every figure."""
from __future__ import annotations

import torch

import spectral
from spectral import cli
from spectral.figures import registry
from spectral.figures.export import csv_bytes, settings_yaml
from spectral.methods.base import LayerFactors
from spectral.methods.svc import svc_layer


def test_tables_follow_the_svc_math(workspace) -> None:
    params = {"base": "tsv_m", "alpha": 1.0, "svc_alpha": 1.0, "k_frac": 0.5}
    coeffs = registry.compute_cached("svc_coefficients", workspace, {"layer": 1, "params": params, "components": 5})
    spectrum = registry.compute_cached("svc_spectrum", workspace, {"layer": 1, "params": params})
    key = coeffs.meta["key"]
    tm = workspace.engine.taskset.task_matrices(key).double()
    direct = svc_layer(LayerFactors(tm), "tsv_m", 1.0, 1.0, {"k_frac": 0.5})
    T = tm.shape[0]
    assert len(coeffs.table) == T * 5 and list(coeffs.table.component[:5]) == [1, 2, 3, 4, 5]
    got = torch.tensor(coeffs.table.s.to_numpy()).reshape(T, 5)
    # SVC of a float32 cached layer against the float64 direct path: the leading directions are well separated
    torch.testing.assert_close(got, direct.coefficients[:, :5], rtol=2e-3, atol=2e-3)
    before = spectrum.table[spectrum.table.which == "before"].sigma.to_numpy()
    after = spectrum.table[spectrum.table.which == "after"].sigma.to_numpy()
    gamma = spectrum.table[spectrum.table.which == "before"].gamma.to_numpy()
    assert abs(after - gamma * before).max() < 1e-6 * before.max()  # float32 factors
    # after calibration the spectrum is the one of the SVC merge itself
    merged = spectral.merge_layer("svc", tm, **params)
    sv = torch.linalg.svdvals(merged).numpy()
    assert abs(sorted(after, reverse=True)[:5] - sv[:5]).max() < 1e-3 * sv[0]


def test_svc_figure_regenerates_from_its_yaml(workspace, tmp_path) -> None:
    settings = {"layer": 0, "params": {"base": "task_arithmetic", "alpha": 1.0, "svc_alpha": 1.0}, "components": 8}
    data = registry.compute_cached("svc_coefficients", workspace, settings)
    doc = registry.settings_document("svc_coefficients", workspace.spec, settings, meta=data.meta)
    path = tmp_path / "svc.yaml"
    path.write_bytes(settings_yaml(doc))
    out = tmp_path / "svc.csv"
    assert cli.main(["figure", str(path), "-o", str(out), "--device", "cpu"]) == 0
    assert out.read_bytes() == csv_bytes(data.table)
    fig = registry.build("svc_coefficients", data, settings)
    assert fig.data[0].zmid == 1.0 and len(fig.data[0].y) == len(workspace.task_names)


def test_svc_is_a_per_layer_merge_on_the_spectra_and_alignment_figures(workspace) -> None:
    params = {"svc": {"base": "task_arithmetic", "alpha": 1.0, "svc_alpha": 1.0}}
    data = registry.compute_cached("spectra", workspace, {"methods": ["task_arithmetic", "svc"], "params": params,
                                                          "layer": 0})
    assert "SVC" in set(data.table.source)
    key = data.meta["key"]
    tm = workspace.engine.taskset.task_matrices(key).double()
    expected = torch.linalg.svdvals(spectral.merge_layer("svc", tm, **params["svc"]))
    got = torch.tensor(data.table[data.table.source == "SVC"].sigma.to_numpy())
    torch.testing.assert_close(got[:5], expected[:5], rtol=1e-4, atol=1e-6)
