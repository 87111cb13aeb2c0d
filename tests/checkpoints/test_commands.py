"""``python -m spectral pool discover|check|inspect``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ckpt_writers as W
import pytest
import torch
import yaml

from spectral.checkpoints import commands


def _run(argv: list[str]) -> int:
    try:
        from spectral.cli import main
    except ImportError:  # the lead's CLI not in this tree: drive the subcommands directly
        parser = argparse.ArgumentParser()
        commands.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        return int(args.func(args))
    return main(argv)


@pytest.fixture
def task_vectors_dir(tiny_models, tmp_path):
    base, fts = tiny_models
    model_dir = tmp_path / "checkpoints" / "tiny"
    model_dir.mkdir(parents=True)
    W.write_task_vectors_pickle(base, model_dir / "zeroshot.pt")
    for name, ft in fts.items():
        (model_dir / name).mkdir()
        W.write_task_vectors_pickle(ft, model_dir / name / "finetuned.pt")
        W.write_head_pickle(torch.randn(10, 16), model_dir / f"head_{name}.pt")
    return model_dir


def test_discover_writes_a_pool_yaml_that_opens(task_vectors_dir, tmp_path, capsys):
    out = tmp_path / "pool.yaml"
    assert _run(["pool", "discover", str(tmp_path / "checkpoints"), "--write", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["base"] == "checkpoints/tiny/zeroshot.pt" and data["quick_gelu"] is True
    assert [t["name"] for t in data["tasks"]] == ["EuroSAT", "MNIST", "SVHN"]
    assert _run(["pool", "check", str(out), "--trust-pickle", "--no-data"]) == 0
    printed = capsys.readouterr().out
    assert "FAIL" not in printed and "MNIST: head" in printed


def test_check_reports_untrusted_pickles_and_fails(task_vectors_dir, capsys):
    assert _run(["pool", "check", str(task_vectors_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)["report"]
    assert report[0]["item"] == "base" and not report[0]["ok"] and "--trust-pickle" in report[0]["detail"]


def test_inspect_names_format_and_architecture(task_vectors_dir, capsys):
    assert _run(["pool", "inspect", str(task_vectors_dir / "MNIST" / "finetuned.pt"), "--trust-pickle"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "pickle" and info["architecture"] == W.TINY and info["object"] == "ImageEncoder"


def _fakes():
    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    import data_fakes

    return data_fakes


def test_discover_with_the_papers_data_location_and_check(task_vectors_dir, tmp_path, capsys):
    F = _fakes()
    loc = tmp_path / "data"
    fakes = F.write_location(loc, ["MNIST", "SVHN", "EuroSAT", "RESISC45", "CIFAR10"])
    out = tmp_path / "pool.yaml"
    assert _run(["pool", "discover", str(tmp_path / "checkpoints"), "--data-root", str(loc), "--write", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["data_root"] == "data"
    assert {t["name"]: t["data"] for t in data["tasks"]} == {"EuroSAT": "EuroSAT_splits", "MNIST": ".", "SVHN": "svhn"}
    capsys.readouterr()
    assert _run(["pool", "check", str(out), "--trust-pickle"]) == 0
    printed = capsys.readouterr().out
    for name in ("MNIST", "SVHN", "EuroSAT"):
        assert f"[ok  ] {name}: data: {len(fakes[name].test)} test images" in printed


def test_check_fails_on_missing_and_wrong_data_unless_no_data(task_vectors_dir, tmp_path, capsys):
    F = _fakes()
    loc = tmp_path / "data"
    F.write_location(loc, ["RESISC45", "CIFAR10"])  # a data location without MNIST, SVHN or EuroSAT
    out = tmp_path / "pool.yaml"
    assert _run(["pool", "discover", str(tmp_path / "checkpoints"), "--write", str(out)]) == 0
    spec = yaml.safe_load(out.read_text())
    spec["tasks"][1]["data"] = str(loc)  # MNIST's data: the data location itself (as the papers pass it)
    out.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert _run(["pool", "check", str(out), "--trust-pickle", "--no-heads"]) == 1
    printed = capsys.readouterr().out
    assert "[FAIL] MNIST: data: DatasetError: MNIST: no MNIST data at" in printed
    assert "holds RESISC45, CIFAR10 data, which is never used for MNIST" in printed
    assert "[FAIL] SVHN: data" in printed and "'data_root:'" in printed
    assert _run(["pool", "check", str(out), "--trust-pickle", "--no-heads", "--no-data"]) == 0
    # --data-root: the data location of a checkpoint folder (discovered) or of a YAML without data_root
    F.write_location(loc, ["SVHN", "EuroSAT"])
    capsys.readouterr()
    assert _run(["pool", "check", str(tmp_path / "checkpoints"), "--trust-pickle", "--no-heads",
                 "--data-root", str(loc)]) == 1  # MNIST is still missing
    printed = capsys.readouterr().out
    assert "[ok  ] SVHN: data" in printed and "[ok  ] EuroSAT: data" in printed and "[FAIL] MNIST: data" in printed
    assert _run(["pool", "check", str(out), "--trust-pickle", "--no-heads", "--data-root", str(loc)]) == 1
    assert "[ok  ] SVHN: data" in capsys.readouterr().out


@pytest.mark.slow
def test_twenty_tasks_found_checked_and_evaluated_past_a_missing_one(tiny_models, tmp_path, capsys):
    """The papers' 20-task tall_masks layout and data location, as a new user has them: discovery finds every data
    set (CIFAR10/100 directly under the location), pool check passes, and eval with one data set removed evaluates
    the other 19, names the missing one and exits 2, keeping the 19 in the results store."""
    import shutil

    from spectral.data.templates import ALL_DATASETS, CLASS_NAMES
    from spectral.eval.results import ResultsStore

    F = _fakes()
    base, fts = tiny_models
    model_dir = tmp_path / "checkpoints" / "tiny"
    for i, name in enumerate(ALL_DATASETS):
        (model_dir / f"{name}Val").mkdir(parents=True)
        W.write_tall_masks_state_dict(fts[["MNIST", "SVHN", "EuroSAT"][i % 3]], model_dir / f"{name}Val" /
                                      "nonlinear_finetuned.pt")
        W.write_head_pickle(torch.randn(len(CLASS_NAMES[name]), 16), model_dir / f"head_{name}Val.pt",
                            tall_masks=True)
    W.write_tall_masks_state_dict(base, model_dir / "nonlinear_zeroshot.pt")
    loc = tmp_path / "data"
    fakes = F.write_location(loc)
    out = tmp_path / "pool.yaml"
    assert _run(["pool", "discover", str(tmp_path / "checkpoints"), "--data-root", str(loc), "--write", str(out)]) == 0
    tasks = yaml.safe_load(out.read_text())["tasks"]
    assert [t["name"] for t in tasks] == ALL_DATASETS and all("data" in t for t in tasks)
    capsys.readouterr()
    assert _run(["pool", "check", str(out), "--trust-pickle"]) == 0
    printed = capsys.readouterr().out
    for name in ALL_DATASETS:
        assert f"[ok  ] {name}: data: {len(fakes[name].test)} test images" in printed

    shutil.rmtree(loc / "cifar-10-batches-py")
    store = tmp_path / "results.sqlite"
    assert _run(["eval", "--pool", str(out), "--trust-pickle", "--method", "task_arithmetic", "--alpha", "0.3",
                 "--device", "cpu", "--store", str(store), "--cache-dir", str(tmp_path / "cache")]) == 2
    captured = capsys.readouterr()
    assert "not evaluated (1 task" in captured.err and "CIFAR10: CIFAR10: no CIFAR10 data" in captured.err
    table = ResultsStore(store).to_dataframe()
    assert set(table.method) == {"zeroshot", "finetuned", "task_arithmetic"}
    assert all(sorted(g.task) == sorted(set(ALL_DATASETS) - {"CIFAR10"}) for _, g in table.groupby("method"))
