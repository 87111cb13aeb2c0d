"""``python -m spectral adapt …`` and the outputs written for a result."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load, load_file

from synthetic import SyntheticPool
from spectral.adapt import AdaptConfig, run_adaptation
from spectral.adapt.outputs import masks_bytes, merged_bytes, save_result
from spectral.adapt.tables import kept_rank_table, lambda_table, mask_table, trace_table
from spectral.app_state import register_pool
from spectral.cli import main

POOL = "synthetic-adapt-cli"


@pytest.fixture(scope="module", autouse=True)
def _registered():
    pool = SyntheticPool(3, seed=3)
    pool.name = POOL
    register_pool(POOL, lambda: pool)


def test_cli_run_resume_list_and_outputs(tmp_path, capsys):
    common = ["--pool", POOL, "--device", "cpu", "--cache-dir", str(tmp_path), "--threads", "1"]
    assert main(["adapt", "run", *common, "--steps", "3", "--select-every", "1", "--selection", "min_entropy"]) == 0
    out = capsys.readouterr().out
    assert '"steps_done": 3' in out and '"label": "TA+AdaRank"' in out
    assert main(["adapt", "run", *common, "--steps", "5", "--evaluate", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert '"steps_done": 5' in out and "TA+AdaRank" in out and "mean" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps_done"] == 5 and set(summary["accuracy"]) == {"task0", "task1", "task2"}
    merged = load_file(str(tmp_path / "out" / "merged.safetensors"))
    assert "visual.proj" in merged
    masks = load_file(str(tmp_path / "out" / "masks.safetensors"))
    assert all(m.shape[0] == 3 for m in masks.values())
    assert main(["adapt", "list", "--cache-dir", str(tmp_path)]) == 0
    assert "TA+AdaRank" in capsys.readouterr().out


def test_cli_compare(tmp_path, capsys):
    args = ["adapt", "compare", "--pool", POOL, "--device", "cpu", "--cache-dir", str(tmp_path), "--steps", "2",
            "--threads", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("TA ", "CART ", "TA+AdaMerging (task-wise)", "TA+AdaMerging (layer-wise)", "TA+AdaRank",
                 "CART+AdaRank", "time per step"):
        assert name in out, name


def test_tables_and_bytes(engine, synthetic_pool, tmp_path):
    result = run_adaptation(engine, synthetic_pool, AdaptConfig(steps=2, eval_every=1), cache_dir=tmp_path)
    masks = mask_table(result)
    r = {k: m.shape[-1] for k, m in result.masks.items()}
    assert len(masks) == 3 * sum(r.values()) and set(masks.kept) <= {0, 1}
    ranks = kept_rank_table(result)
    assert len(ranks) == 3 * len(result.masks) and (ranks.kept <= ranks["rank"]).all()
    lam = lambda_table(result)
    assert len(lam) == 3 * len(result.lambda_keys)
    traces = trace_table(result)
    assert set(traces.series) == {"train entropy (Σ tasks)", "train entropy", "selection entropy (Σ tasks)",
                                  "test accuracy"}
    assert traces[traces.uses_labels].series.unique().tolist() == ["test accuracy"]
    assert set(load(merged_bytes(result))) == set(result.state_dict)
    assert set(load(masks_bytes(result))) == set(result.masks)
    paths = save_result(result, tmp_path / "o")
    assert all(p.is_file() for p in paths.values())
