"""Decoder-LLM pools whose tasks are JSONL text files (issue 25 item 3): the pool YAML and discovery, the
normalised token-loss score through the Evaluator, the results store, the eval CLI and the radar, on a tiny
LlamaForCausalLM pool of full fine-tunes trained here for a few steps."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_fixtures import write_tiny_causal_pool, write_tiny_llama_pool  # noqa: E402

TASKS = ("math", "code", "chat")


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    return write_tiny_causal_pool(tmp_path_factory.mktemp("causal"), TASKS)


@pytest.fixture(scope="module")
def pool(causal):
    from spectral.checkpoints.pool import open_pool

    return open_pool(str(causal["yaml"]))


def test_the_yaml_gives_a_language_pool_of_text_file_tasks(pool, causal):
    from spectral.checkpoints.hf_pool import HFPool

    assert isinstance(pool, HFPool) and pool.family == "lm" and pool.architecture == "llama"
    assert pool.task_names == list(TASKS)
    assert [pool.metric(t) for t in TASKS] == ["normalised"] * 3
    assert all(pool.is_lm_task(t) for t in TASKS)
    assert len(pool.dataset("math", "test")) == 12 and len(pool.dataset("math", "val")) == 12
    # lm_head is every fine-tune's: merged like any body weight
    assert "lm_head.weight" in pool.body_keys()
    assert all(row["ok"] for row in pool.check()), pool.check()


def test_base_scores_zero_and_each_finetune_one_exactly(pool, tmp_path):
    from spectral.eval.evaluate import Evaluator

    ev = Evaluator(pool, store=tmp_path / "results.sqlite", device="cpu", cache_dir=tmp_path / "cache")
    assert ev.zeroshot() == {t: 0.0 for t in TASKS}
    assert ev.finetuned() == {t: 1.0 for t in TASKS}
    zs, ft = ev.reference_result("zeroshot"), ev.reference_result("finetuned")
    for t in TASKS:
        base, own = pool.reference_losses(t)
        assert zs.losses[t] == base.mean and ft.losses[t] == own.mean
        assert ft.losses[t] < zs.losses[t]  # a few steps of training lowered the loss on its own text
    merged = ev.merged_result("task_arithmetic", alpha=0.5)
    for t in TASKS:
        expected = (zs.losses[t] - merged.losses[t]) / (zs.losses[t] - ft.losses[t])
        assert merged.accuracies[t] == pytest.approx(expected, rel=1e-12)
    # the store keeps the losses (a fresh evaluator reads them back, computes nothing)
    again = Evaluator(pool, store=tmp_path / "results.sqlite", device="cpu", cache_dir=tmp_path / "cache")
    assert again.merged_result("task_arithmetic", alpha=0.5).losses == merged.losses and again.evaluations == 0
    # alpha = 0 is the base: 0 exactly on every task
    assert ev.merged("task_arithmetic", alpha=0.0) == {t: 0.0 for t in TASKS}
    s = ev.summary(merged.accuracies)
    assert s.nai == pytest.approx(s.absolute)  # NAI of a normalised score is the score itself


def test_losses_match_transformers_on_the_pool_folders(pool):
    """The fine-tune's pooled loss from its own folder, read by transformers (AutoModelForCausalLM)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spectral.eval.lm_loss import encode_examples

    folder = pool.folders["chat"].path
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    data = pool.dataset("chat", "test")
    enc = encode_examples(tok, data, range(len(data)), None)
    total = count = 0.0
    with torch.no_grad():
        for seq, first in enc:
            labels = torch.tensor([-100] * first + seq[first:])[None]
            n = int((labels[0, 1:] != -100).sum())
            total += float(model(input_ids=torch.tensor([seq]), labels=labels).loss) * n
            count += n
    assert pool.reference_losses("chat")[1].mean == pytest.approx(total / count, rel=1e-5)


def test_subsample_gives_bootstrap_intervals(pool, tmp_path):
    from spectral.eval.evaluate import Evaluator

    ev = Evaluator(pool, store=False, device="cpu", cache_dir=tmp_path / "cache", subsample=5)
    r = ev.merged_result("task_arithmetic", alpha=0.5)
    assert r.is_subsample and r.counts == {t: 5 for t in TASKS}
    for t in TASKS:
        low, high = r.intervals()[t]
        assert low <= r.accuracies[t] <= high and low < high
    assert ev.reference_result("zeroshot").intervals() == {t: (0.0, 0.0) for t in TASKS}


def test_eval_cli_writes_loss_and_normalised_columns(causal, tmp_path, capsys):
    from spectral.cli import main

    args = ["--pool", str(causal["yaml"]), "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
            "--store", str(tmp_path / "r.sqlite")]
    frames = {}
    for method in ("zeroshot", "finetuned", "tsv_m"):
        out = tmp_path / f"{method}.csv"
        assert main(["eval", *args, "--method", method, "--csv", str(out)]) == 0
        frames[method] = pd.read_csv(out)
    printed = capsys.readouterr().out
    assert "metric 'normalised': (loss_base - loss) / (loss_base - loss_finetuned)" in printed
    for df in frames.values():
        assert list(df.metric) == ["normalised"] * 3
        assert {"loss", "loss_base", "loss_finetuned", "examples"} <= set(df.columns)
        assert df.accuracy.isna().all()  # never an "accuracy" of a loss task
    assert list(frames["zeroshot"].score) == [0.0] * 3
    assert list(frames["finetuned"].score) == [1.0] * 3
    m = frames["tsv_m"]
    assert (m.score == (m.loss_base - m.loss) / (m.loss_base - m.loss_finetuned)).all()
    assert (m.nai == m.score).all()
    assert (frames["zeroshot"].loss == frames["zeroshot"].loss_base).all()
    # --subsample: intervals in the CSV
    sub = tmp_path / "sub.csv"
    assert main(["eval", *args, "--method", "tsv_m", "--subsample", "6", "--csv", str(sub)]) == 0
    s = pd.read_csv(sub)
    assert (s.ci_low <= s.score).all() and (s.score <= s.ci_high).all() and (s.ci_low < s.ci_high).all()
    # the results export has the losses
    exported = tmp_path / "all.csv"
    assert main(["results", "export", "--store", str(tmp_path / "r.sqlite"), "--out", str(exported)]) == 0
    assert pd.read_csv(exported).loss.notna().all()


def test_discovery_finds_the_text_files(causal, tmp_path, capsys):
    from spectral.checkpoints.pool import discover_pool
    from spectral.cli import main

    root = tmp_path / "pool"
    shutil.copytree(causal["root"], root)
    (root / "pool.yaml").unlink()
    spec = discover_pool(root)
    assert [t.name for t in spec.tasks] == sorted(TASKS)
    assert {t.name: t.data.name for t in spec.tasks} == {t: f"{t}.jsonl" for t in TASKS}
    assert all(t.dataset is None for t in spec.tasks)
    assert main(["pool", "discover", str(root), "--write", str(root / "found.yaml")]) == 0
    from spectral.checkpoints.pool import open_pool

    found = open_pool(str(root / "found.yaml"))
    assert [found.metric(t) for t in found.task_names] == ["normalised"] * 3


def test_a_classifier_with_a_text_file_is_refused_by_name(tmp_path):
    from spectral.checkpoints.hf_pool import HFPool
    from spectral.errors import CheckpointError
    from lm_fixtures import write_pool_yaml

    paths = write_tiny_llama_pool(tmp_path, ("sst2",))
    (tmp_path / "sst2.jsonl").write_text('{"text": "good movie"}\n')
    pool = HFPool.from_yaml(write_pool_yaml(paths, data={"sst2": "sst2.jsonl"}))
    assert pool.metric("sst2") == "normalised"
    with pytest.raises(CheckpointError, match=r"task 'sst2'.*is a LlamaForSequenceClassification, not a causal"):
        pool.task_scores(pool.base_state_dict(), device="cpu")


def test_a_missing_val_file_is_named(causal, tmp_path):
    from spectral.checkpoints.pool import open_pool
    from spectral.eval.lm_loss import TextFileError

    root = tmp_path / "pool"
    shutil.copytree(causal["root"], root)
    (root / "code.val.jsonl").unlink()
    p = open_pool(str(root / "pool.yaml"))
    with pytest.raises(TextFileError, match=r"code\.val\.jsonl: text file not found"):
        p.dataset("code", "val")


def test_radar_marks_and_fits_normalised_scores():
    from spectral.analysis import accuracy_table
    from spectral.figures.accuracy import radar_figure

    zs = {"math": 0.0, "code": 0.0}
    ft = {"math": 100.0, "code": 100.0}
    table = accuracy_table({"TSV-M": {"math": -40.0, "code": 130.0}}, zs, ft,
                           {"math": "normalised", "code": "normalised"})
    fig = radar_figure(table)
    low, high = fig.layout.polar.radialaxis.range
    assert low == -40.0 and high == 130.0
    assert "math (loss, normalised)" in fig.data[0].theta
    assert min(fig.layout.polar.radialaxis.tickvals) == -40.0
    # an accuracy pool keeps its 0-100 axis
    acc = accuracy_table({"TA": {"a": 50.0}}, {"a": 20.0}, {"a": 90.0})
    assert tuple(radar_figure(acc).layout.polar.radialaxis.range) == (0.0, 100.0)


def test_gpt2_lm_head_pool_with_tied_embeddings(tmp_path):
    """GPT2LMHeadModel fine-tunes (lm_head tied to wte, not stored): base 0 and fine-tune 1 exactly."""
    from spectral.checkpoints.pool import open_pool

    paths = write_tiny_causal_pool(tmp_path, ("math", "chat"), model_type="gpt2", steps=3)
    pool = open_pool(str(paths["yaml"]))
    assert pool.architecture == "gpt2" and "lm_head.weight" not in pool.body_keys()
    assert pool.task_scores(pool.base_state_dict(), device="cpu")[0] == {"math": 0.0, "chat": 0.0}
    assert pool.task_scores(pool.finetuned_state_dict("chat"), tasks=["chat"], device="cpu")[0] == {"chat": 1.0}


def test_the_text_files_are_part_of_the_pool_key(causal, tmp_path):
    """Editing a task's text file (same number of lines) changes the results-store key of the pool."""
    from spectral.checkpoints.pool import open_pool
    from spectral.eval.results import pool_fingerprint

    root = tmp_path / "pool"
    shutil.copytree(causal["root"], root)
    before = pool_fingerprint(open_pool(str(root / "pool.yaml")))
    lines = (root / "math.jsonl").read_text().splitlines()
    (root / "math.jsonl").write_text("\n".join([json.dumps({"text": "one two"})] + lines[1:]) + "\n")
    assert pool_fingerprint(open_pool(str(root / "pool.yaml"))) != before


def test_adaptation_is_refused_by_name(pool):
    import torch

    from spectral.errors import ParameterError

    with pytest.raises(ParameterError, match=r"tasks \['math', 'code', 'chat'\] are scored by token loss"):
        pool.task_forward(pool.base_state_dict(), torch.device("cpu"))


def test_ablation_bars_below_zero_stay_on_screen():
    from spectral.figures.sweeps import ablation_figure

    table = pd.DataFrame({"variant": ["ta", "lr", "ir", "tsv"], "low_rank": [False, True, False, True],
                          "interference_reduction": [False, False, True, True],
                          "accuracy": [-30.0, 10.0, 20.0, 60.0], "delta": [0.0, 40.0, 50.0, 90.0]})
    low, high = ablation_figure(table).layout.yaxis.range
    assert low < -30.0 and high > 60.0
