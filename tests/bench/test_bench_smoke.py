"""The benchmark script stays runnable (a tiny workload; the figures themselves are not asserted)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"
FIGURES = ["cache_build_over_bare_svd", "recompute_over_warm_load", "tsv_m_recompute_over_cached",
           "iso_cts_recompute_over_cached", "iso_cts_dense_lapack_ceiling",
           "iso_cts_step_recompute_over_cached", "alpha_change_ms"]


@pytest.mark.parametrize("extra", [[], ["--full-rank"]])
def test_engine_bench_prints_every_figure(capsys, extra):
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--blocks", "0", "--tasks", "2", *extra]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    names = [line.split(":")[0] for line in lines]
    assert names == FIGURES
    for line in lines:
        assert float(line.split(":")[1]) >= 0  # a figure, parsable; its size is not asserted
