"""bench/gpu.py and bench/scale.py stay runnable (tiny workloads; the figures themselves are not asserted)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figures(out: str) -> dict[str, str]:
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def test_gpu_bench_merge_parts_run_on_cpu(capsys):
    assert _load("gpu").main(["--quick", "--only", "svd,eigh,cache,sliders", "--device", "cpu"]) == 0
    figures = _figures(capsys.readouterr().out)
    for name in ("svd_512x128_gram_cpu_ms_per_matrix", "svd_96x96_torch_cpu_ms_per_matrix",
                 "eigh_96_fp64_cpu_ms_per_matrix", "vitb32x2_cache_build_cpu_s", "disk_write_gb_per_s",
                 "vitb32x2_cache_write_gb_per_s",
                 "vitl14x2_cache_build_cpu_extrapolated_s",
                 "slider_tsv_m_k_frac_cpu_ms", "slider_iso_cts_common_frac_cpu_ms", "slider_alpha_cpu_ms",
                 "reference_tsv_m_k_frac_cpu_ms", "reference_iso_cts_common_frac_cpu_ms",
                 "slider_tsv_m_k_frac_reference_over_engine_cpu",
                 "slider_iso_cts_common_frac_reference_over_engine_cpu",
                 "slider_iso_cts_far_cpu_ms", "slider_iso_cts_far_reference_over_engine_cpu"):
        assert float(figures[name]) >= 0


@pytest.mark.slow
def test_gpu_bench_evaluation_part_runs_on_cpu(capsys):
    assert _load("gpu").main(["--quick", "--only", "eval", "--device", "cpu"]) == 0
    figures = _figures(capsys.readouterr().out)
    assert float(figures["eval_cold_cpu_images_per_s"]) > 0 and float(figures["eval_warm_cpu_images_per_s"]) > 0


@pytest.mark.slow
def test_scale_bench_prints_its_figures(capsys, tmp_path):
    args = ["--scales", "0.0005,0.001", "--tasks", "1", "--quick", "--workdir", str(tmp_path)]
    assert _load("scale").main(args) == 0
    out = capsys.readouterr().out
    assert "accuracies identical across modes" in out and "WARNING" not in out
    figures = _figures(out)
    for mode in ("old", "cold", "warm"):
        assert float(figures[f"{mode}_0.001_peak_rss_mb"]) > 0 and f"{mode}_rss_growth_mb_per_image" in figures
    assert float(figures["image_cache_mb_per_image"]) > 0


@pytest.mark.slow
def test_eval_command_bench_prints_its_figures(capsys, tmp_path):
    args = ["--tasks", "1", "--scale", "0.0005", "--quick", "--workdir", str(tmp_path)]
    assert _load("eval_command").main(args) == 0
    figures = _figures(capsys.readouterr().out)
    assert figures["tasks"] == "1" and float(figures["checkpoints_mb"]) > 2 * 330  # two ViT-B/32 files
    for name in ("eval_zeroshot_peak_rss_mb", "eval_tsv_m_peak_rss_mb", "tsv_m_over_zeroshot_peak_rss"):
        assert float(figures[name]) > 0
