"""A language-model pool through the same seam as CLIP pools: the Evaluator, the results store's intervals, the
engine and test-time adaptation, on a tiny GPT-2 pool written by ``save_pretrained`` with GLUE files."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_fixtures import write_pool_yaml, write_tiny_gpt2_pool  # noqa: E402

TASKS = ("cola", "sst2", "rte")
WORDS = "the a cat dog sat ran on mat big small red blue quickly slowly house tree".split()


def _sentence(g: torch.Generator, n: int = 3) -> str:
    return " ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (n,), generator=g))


def write_glue(root: Path, n: int = 24) -> dict[str, str]:
    """GLUE's own dev files for CoLA (no header), SST-2 and RTE (label words), ``n`` examples each."""
    g = torch.Generator().manual_seed(3)
    glue = root / "glue"
    (glue / "CoLA").mkdir(parents=True)
    (glue / "CoLA" / "dev.tsv").write_text("".join(f"src\t{i % 2}\t\t{_sentence(g)}\n" for i in range(n)))
    (glue / "SST-2").mkdir()
    (glue / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{_sentence(g)}\t{i % 2}\n"
                                                                            for i in range(n)))
    (glue / "RTE").mkdir()
    words = ["entailment", "not_entailment"]
    (glue / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n" + "".join(
        f"{i}\t{_sentence(g)}\t{_sentence(g, 2)}\t{words[i % 2]}\n" for i in range(n)))
    return {"cola": "glue/CoLA", "sst2": "glue/SST-2", "rte": "glue/RTE"}


@pytest.fixture(scope="module")
def lm_pool(tmp_path_factory):
    from spectral.checkpoints.hf_pool import HFPool

    root = tmp_path_factory.mktemp("lm")
    paths = write_tiny_gpt2_pool(root, TASKS)
    data = write_glue(Path(paths["root"]))
    return HFPool.from_yaml(write_pool_yaml(paths, data=data))


def _direct_scores(pool, task: str) -> float:
    """The fine-tune evaluated by its own transformers class, one example at a time (no spectral code but the
    metric)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spectral.eval.text import accuracy, mcc

    folder = pool.folders[task].path
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    split = pool.dataset(task, "test")
    preds = []
    with torch.no_grad():
        for i in range(len(split)):
            args = (split.text_a[i],) if split.text_b is None else (split.text_a[i], split.text_b[i])
            preds.append(int(model(**tok(*args, return_tensors="pt")).logits.argmax(-1)))
    return mcc(preds, split.labels) if pool.metric(task) == "mcc" else accuracy(preds, split.labels)


def test_the_pool_is_a_language_family_pool(lm_pool):
    from spectral.pool import ModelPool

    assert isinstance(lm_pool, ModelPool) and lm_pool.family == "lm"
    assert [lm_pool.metric(t) for t in TASKS] == ["mcc", "accuracy", "accuracy"]
    assert lm_pool.describe()["family"] == "lm"
    assert set(lm_pool.matrix_filters()) == {"default", "attn_mlp"}


def test_finetuned_scores_equal_the_transformers_class_one_example_at_a_time(lm_pool):
    from spectral.eval.evaluate import Evaluator

    ev = Evaluator(lm_pool, store=False, device="cpu")
    ft = ev.finetuned()
    for task in TASKS:
        assert ft[task] == pytest.approx(_direct_scores(lm_pool, task), abs=1e-12)


def test_merges_are_evaluated_and_alpha_zero_is_the_base(lm_pool, tmp_path):
    from spectral.eval.evaluate import Evaluator

    ev = Evaluator(lm_pool, store=tmp_path / "r.sqlite", device="cpu", cache_dir=tmp_path)
    zs = ev.zeroshot()
    ta0 = ev.merged("task_arithmetic", alpha=0.0)
    assert ta0 == pytest.approx(zs, abs=1e-12)
    tsv = ev.merged("tsv_m", alpha=1.0)
    assert set(tsv) == set(TASKS) and all(-1.0 <= v <= 1.0 for v in tsv.values())
    assert ev.evaluations == 3
    ev.merged("tsv_m", alpha=1.0)  # from the store
    assert ev.evaluations == 3


def test_a_subsampled_mcc_keeps_its_bootstrap_interval_in_the_store(lm_pool, tmp_path):
    from spectral.eval.evaluate import Evaluator
    from spectral.metrics.estimate import wilson_interval

    store = tmp_path / "r.sqlite"
    ev = Evaluator(lm_pool, store=store, device="cpu", cache_dir=tmp_path)
    result = ev.reference_result("finetuned", subsample=10)
    assert result.is_subsample and set(result.bounds) == {"cola"}  # accuracies' intervals are Wilson's
    low, high = result.bounds["cola"]
    assert low <= result.accuracies["cola"] <= high
    again = Evaluator(lm_pool, store=store, device="cpu", cache_dir=tmp_path).reference_result("finetuned",
                                                                                              subsample=10)
    assert again.bounds == result.bounds  # read back from SQLite
    ci = again.intervals()
    assert ci["cola"] == result.bounds["cola"]
    n = again.counts["sst2"]
    assert ci["sst2"] == wilson_interval(round(again.accuracies["sst2"] * n), n)


def test_the_adaptation_forward_equals_the_task_model(lm_pool):
    """functional_call with a fine-tune's canonical body gives that fine-tune's own logits (Conv1D orientation,
    prefixes and the task's head all right)."""
    from spectral.eval.text import encode_batch

    task = "rte"
    forward = lm_pool.task_forward(dict(lm_pool.base_state_dict()), torch.device("cpu"), seed=0)
    body = {k: v.float() for k, v in lm_pool.finetuned_state_dict(task).items()}
    inputs = forward.fixed(2, 5)
    got = forward.task_logits(body, 2, inputs)
    model = lm_pool.task_model(task, body)
    with torch.no_grad():
        want = model(**encode_batch(model, lm_pool.tokenizer(task), *inputs)).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # and the base body gives other logits: the check can fail
    base_logits = forward.task_logits({k: v.float() for k, v in lm_pool.base_state_dict().items()}, 2, inputs)
    assert not torch.allclose(base_logits, want, atol=1e-4)


def test_adarank_runs_on_a_language_pool(lm_pool, tmp_path, one_torch_thread):
    from spectral.adapt.run import AdaptConfig, Adaptation
    from spectral.engine import Engine
    from spectral.taskset import TaskSet

    engine = Engine(TaskSet.from_pool(lm_pool), cache_dir=tmp_path, device="cpu")
    run = Adaptation(engine, lm_pool, AdaptConfig(method="adarank", base="task_arithmetic", steps=3, batch_size=4,
                                                 select_every=1, eval_every=3), cache_dir=tmp_path)
    result = run.run()
    assert result.step == 3 if hasattr(result, "step") else run.step == 3
    assert all(math.isfinite(h) for h in run.traces["entropy"])
    assert len(run.traces["test_accuracy"]["cola"]) == 2  # before the first step and at the end
    # AdaRank masks GPT-2's attention (c_attn, attn.c_proj) and MLP weights, not the embeddings
    assert sorted({k.split(".", 2)[2] for k in result.masks}) == ["attn.c_attn.weight", "attn.c_proj.weight",
                                                                  "mlp.c_fc.weight", "mlp.c_proj.weight"]
