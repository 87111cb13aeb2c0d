"""``eval`` over tasks of which some have no data: the others are evaluated and stored, the missing ones reported by
name and reason, exit status 2; a task whose data has another class count than its head is refused in eval too."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from folder_pool import FolderPool  # noqa: E402

from spectral.data.folders import DatasetError  # noqa: E402
from spectral.eval import commands as eval_commands  # noqa: E402
from spectral.eval.evaluate import Evaluator  # noqa: E402
from spectral.eval.results import ResultsStore  # noqa: E402


@pytest.fixture
def pool_missing_one(tmp_path):
    pool = FolderPool(tmp_path / "data", tasks=("alpha", "beta", "gamma"), per_class=2)
    shutil.rmtree(tmp_path / "data" / "beta")  # beta's data is gone
    return pool


def test_evaluator_skips_and_reports_tasks_without_data(pool_missing_one, tmp_path):
    torch.set_num_threads(1)
    store = ResultsStore(tmp_path / "results.sqlite")
    ev = Evaluator(pool_missing_one, store=store, device="cpu", skip_missing_data=True, version="t")
    assert ev.tasks == ["alpha", "gamma"]
    assert list(ev.unavailable) == ["beta"] and "does not exist" in ev.unavailable["beta"]
    zs = ev.zeroshot()
    assert set(zs) == {"alpha", "gamma"}
    # what was evaluated is in the store, under the pool's key
    again = Evaluator(pool_missing_one, store=store, device="cpu", skip_missing_data=True, version="t")
    assert again.cached("zeroshot", {}) == zs
    # without skipping, the missing data is an error naming the folder
    with pytest.raises(DatasetError, match="beta"):
        Evaluator(pool_missing_one, store=False, device="cpu", version="t").zeroshot()


def test_class_count_differing_from_the_head_is_an_error_in_eval(tmp_path):
    pool = FolderPool(tmp_path / "data", tasks=("alpha",), per_class=2)
    pool._heads["alpha"] = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)  # 5 rows, 3 class folders
    with pytest.raises(DatasetError, match="3 classes, its head has 5"):
        Evaluator(pool, store=False, device="cpu", version="t").zeroshot()
    ev = Evaluator(pool, store=False, device="cpu", version="t", skip_missing_data=True)
    assert ev.tasks == [] and "3 classes, its head has 5" in ev.unavailable["alpha"]


def test_eval_command_evaluates_the_rest_and_exits_2(pool_missing_one, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("spectral.cli.open_pool", lambda spec, trust_pickle=False: pool_missing_one)
    parser = argparse.ArgumentParser()
    eval_commands.register(parser.add_subparsers(dest="command", required=True))
    store = tmp_path / "results.sqlite"
    args = parser.parse_args(["eval", "--pool", "folder.yaml", "--method", "task_arithmetic", "--alpha", "0.3",
                              "--device", "cpu", "--store", str(store), "--cache-dir", str(tmp_path / "cache"),
                              "--csv", str(tmp_path / "ta.csv")])
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert "alpha" in captured.out and "gamma" in captured.out
    assert "not evaluated (1 task" in captured.err and "beta:" in captured.err and "does not exist" in captured.err
    table = ResultsStore(store).to_dataframe()
    assert set(table.method) == {"zeroshot", "finetuned", "task_arithmetic"}
    assert all(set(g.task) == {"alpha", "gamma"} for _, g in table.groupby("method"))
