"""The benchmark script stays runnable (a tiny workload; the figures themselves are not asserted)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "engine.py"
FIGURES = ["cache_build_over_bare_svd", "recompute_over_warm_load", "tsv_m_recompute_over_cached",
           "iso_cts_recompute_over_cached", "iso_cts_dense_lapack_ceiling",
           "iso_cts_step_recompute_over_cached", "alpha_change_ms", "alpha_bare_axpy_ms",
           "alpha_change_over_bare_axpy"]


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


def test_dense_lapack_timer_counts_calls_and_restores_torch():
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import torch

    eigh, svd = torch.linalg.eigh, torch.linalg.svd
    x = torch.randn(6, 4, dtype=torch.float64)
    with module.DenseLapackTimer() as timer:
        _, vectors = torch.linalg.eigh(x.mT @ x)
        torch.linalg.svd(x, full_matrices=False)
        torch.linalg.qr(x)  # not a dense eigh/SVD call: not counted
    assert timer.calls == 2 and timer.seconds > 0
    assert torch.linalg.eigh is eigh and torch.linalg.svd is svd
    assert torch.allclose(vectors.mT @ vectors, torch.eye(4, dtype=torch.float64))  # the wrapped call's own result
