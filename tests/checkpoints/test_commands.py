"""``python -m spectral pool discover|check|inspect``."""
from __future__ import annotations

import argparse
import json

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
