"""The zoo/eval/sweep/results CLI subcommands, registered into an argparse parser as spectral.cli does."""
from __future__ import annotations

import argparse
import shutil

import pandas as pd
import pytest

from spectral.eval import commands as eval_commands
from spectral.zoo import commands as zoo_commands


def _parser():
    parser = argparse.ArgumentParser(prog="spectral")
    sub = parser.add_subparsers(dest="command", required=True)
    zoo_commands.register(sub)
    eval_commands.register(sub)
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


def test_parsers():
    p = _parser()
    a = p.parse_args(["zoo", "build", "--tasks", "14", "--seed", "3"])
    assert a.tasks == 14 and a.seed == 3 and a.config == "default" and a.func is zoo_commands.cmd_build
    with pytest.raises(SystemExit):
        p.parse_args(["zoo", "build", "--tasks", "9"])
    a = p.parse_args(["sweep", "rank", "--pool", "zoo-8", "--fractions", "0.1,1"])
    assert a.kind == "rank" and a.fractions == "0.1,1"
    a = p.parse_args(["eval", "--method", "tsv_m", "--param", "k_frac=0.2", "--alpha", "1.0"])
    assert a.param == ["k_frac=0.2"] and a.alpha == 1.0


def test_cli_end_to_end_on_the_micro_zoo(micro_root, tmp_path, capsys):
    cache = tmp_path / "cache"
    # the CLI finds the micro zoo where `zoo build --config micro` would have put it
    shutil.copytree(micro_root, cache / "zoo" / "micro-seed0")
    assert _run(["zoo", "build", "--config", "micro", "--cache-dir", str(cache)]) == 0
    assert "zoo-4-micro-s0 ready" in capsys.readouterr().out
    assert _run(["zoo", "info", "--config", "micro", "--cache-dir", str(cache)]) == 0
    assert "colors" in capsys.readouterr().out
    assert _run(["eval", "--pool", "zoo-micro", "--cache-dir", str(cache), "--device", "cpu",
                 "--method", "task_arithmetic", "--alpha", "0.3", "--csv", str(tmp_path / "ta.csv")]) == 0
    out = capsys.readouterr().out
    assert "normalized" in out and "NAI" in out
    assert len(pd.read_csv(tmp_path / "ta.csv")) == 4
    assert "whole split" in out and set(pd.read_csv(tmp_path / "ta.csv").images) == {128}
    # --subsample: a stratified subsample per task, stored as an estimate, with Wilson intervals
    assert _run(["eval", "--pool", "zoo-micro", "--cache-dir", str(cache), "--device", "cpu", "--subsample", "40",
                 "--method", "task_arithmetic", "--alpha", "0.3", "--csv", str(tmp_path / "ta40.csv")]) == 0
    out = capsys.readouterr().out
    assert "subsample of 40 images per task" in out and "ci_low" in out
    est = pd.read_csv(tmp_path / "ta40.csv")
    assert set(est.images) == {40} and (est.ci_low <= est.accuracy).all() and (est.accuracy <= est.ci_high).all()
    assert _run(["sweep", "rank", "--pool", "zoo-micro", "--cache-dir", str(cache), "--device", "cpu",
                 "--fractions", "0.1,1.0", "--out", str(tmp_path / "rank.csv")]) == 0
    rank = pd.read_csv(tmp_path / "rank.csv")
    assert len(rank) == 8 and set(rank.k_frac) == {0.1, 1.0}
    assert _run(["sweep", "alpha", "--pool", "zoo-micro", "--cache-dir", str(cache), "--device", "cpu",
                 "--method", "tsv_m", "--alphas", "0.5,1.0"]) == 0
    assert _run(["results", "count", "--store", str(cache / "results.sqlite")]) == 0
    assert "stored runs" in capsys.readouterr().out
    out_csv = tmp_path / "all.csv"
    assert _run(["results", "export", "--store", str(cache / "results.sqlite"), "--out", str(out_csv)]) == 0
    assert set(pd.read_csv(out_csv).method) >= {"zeroshot", "finetuned", "task_arithmetic", "tsv_c", "tsv_m"}
