"""Text evaluation (issue 23): padded, streamed logits equal transformers' one-example-at-a-time forward for tiny
GPT-2 and RoBERTa classifiers written by ``save_pretrained``; MCC and accuracy against hand-computed and
independent float64 values; per-task scores, subsamples and their intervals."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import text_fixtures as tf

from spectral.eval.text import (
    BOOTSTRAP_RESAMPLES,
    accuracy,
    bootstrap_mcc_interval,
    mcc,
    pad_batch,
    score_estimate,
    text_logits,
    text_predictions,
    text_task_estimates,
    text_task_scores,
)
from spectral.metrics.estimate import stratified_subsample, wilson_interval


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_models")
    return {
        "gpt2": tf.save_gpt2_classifier(root / "gpt2_mnli", num_labels=3, seed=1),
        "gpt2_nopad": tf.save_gpt2_classifier(root / "gpt2_nopad", num_labels=2, seed=2, pad_in_config=False),
        "roberta": tf.save_roberta_classifier(root / "roberta_rte", num_labels=2, seed=3),
        "gpt2_cola": tf.save_gpt2_classifier(root / "gpt2_cola", num_labels=2, seed=4),
    }


def _logits_of(pool, task, body=None, batch_size=4, **kw):
    ref = pool.reference_model(task)
    model = pool.task_model(task, body if body is not None else tf.canonical_body(ref))
    split = pool.dataset(task)
    out = torch.full((len(split), model.config.num_labels), float("nan"))
    seen = []
    for positions, logits in text_logits(model, pool.tokenizer(task), split, batch_size=batch_size, **kw):
        assert logits.shape[0] <= batch_size
        out[positions] = logits
        seen.extend(positions.tolist())
    return out, sorted(seen)


@pytest.mark.parametrize("kind, pairs, num_labels", [
    ("gpt2", True, 3), ("gpt2", False, 3), ("gpt2_nopad", True, 2), ("roberta", True, 2), ("roberta", False, 2),
])
def test_padded_logits_equal_transformers_one_example_at_a_time(folders, kind, pairs, num_labels) -> None:
    split = tf.make_split("t", [i % num_labels for i in range(20)], pairs=pairs, num_labels=num_labels)
    pool = tf.SavedModelPool({"t": (folders[kind], split, "accuracy")})
    tok = pool.tokenizer("t")
    lengths = {len(tok(a, b)["input_ids"]) if pairs else len(tok(a)["input_ids"])
               for a, b in zip(split.text_a, split.text_b or split.text_a)}
    assert len(lengths) > 5  # batches really are padded
    reference = tf.one_at_a_time_logits(pool.reference_model("t"), tok, split)
    got, seen = _logits_of(pool, "t")
    assert seen == list(range(len(split)))  # every example once
    scale = float(reference.abs().max())
    assert scale > 0.1
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5 * scale)


def test_the_gpt2_check_can_fail_padding_with_another_id_moves_the_pooled_token(folders) -> None:
    """Negative control: GPT-2 pools the rightmost token that is not ``config.pad_token_id``; padding with any
    other id makes it pool a pad position, and the logits differ from the unpadded ones."""
    split = tf.make_split("t", [0, 1, 2, 0], pairs=False, num_labels=3)
    pool = tf.SavedModelPool({"t": (folders["gpt2"], split, "accuracy")})
    model, tok = pool.reference_model("t"), pool.tokenizer("t")
    reference = tf.one_at_a_time_logits(model, tok, split)
    encoded = [tok(a) for a in split.text_a]
    assert len({len(e["input_ids"]) for e in encoded}) > 1
    wrong = next(i for i in range(len(tok)) if i != model.config.pad_token_id)
    with torch.inference_mode():
        right_pad = model(**pad_batch(encoded, model.config.pad_token_id)).logits
        wrong_pad = model(**pad_batch(encoded, wrong)).logits
    torch.testing.assert_close(right_pad, reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(wrong_pad, reference, atol=1e-3)


def test_the_body_passed_in_is_the_one_evaluated(folders) -> None:
    """Another fine-tune's body in this task's model gives that body's logits, not the fine-tune's own."""
    split = tf.make_split("t", [0, 1] * 5, pairs=True)
    pool = tf.SavedModelPool({"t": (folders["gpt2_cola"], split, "accuracy"),
                              "o": (folders["gpt2_nopad"], split, "accuracy")})
    other = tf.canonical_body(pool.reference_model("o"))
    got, _ = _logits_of(pool, "t", body=other)
    ref_model = pool.reference_model("t")
    tf.load_body(ref_model, other)
    reference = tf.one_at_a_time_logits(ref_model, pool.tokenizer("t"), split)
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-4)
    own, _ = _logits_of(pool, "t")
    assert not torch.allclose(own, got, atol=1e-3)


def test_predictions_are_streamed_in_small_chunks_and_keep_their_positions(folders) -> None:
    split = tf.make_split("t", [i % 3 for i in range(23)], pairs=True, num_labels=3)
    pool = tf.SavedModelPool({"t": (folders["gpt2"], split, "accuracy")})
    model, tok = pool.reference_model("t"), pool.tokenizer("t")
    reference = tf.one_at_a_time_logits(model, tok, split).argmax(1)
    chunks = list(text_logits(model, tok, split, batch_size=3, chunk=5))
    assert max(len(p) for p, _ in chunks) <= 3 and len(chunks) >= 8
    done: list[int] = []
    pred = text_predictions(model, tok, split, batch_size=3, progress=done.append)
    assert torch.equal(pred, reference)
    assert done[-1] == len(split) and done == sorted(done)
    idx = torch.tensor([20, 3, 7, 11])
    assert torch.equal(text_predictions(model, tok, split, indices=idx, batch_size=2), reference[idx])


# -- metrics ------------------------------------------------------------------------------------------------------
def test_mcc_equals_a_hand_computed_two_by_two_case() -> None:
    # TP = 6, TN = 3, FP = 1, FN = 2: MCC = (6·3 − 1·2) / sqrt((6+1)(6+2)(3+1)(3+2)) = 16 / sqrt(1120)
    labels = [1] * 6 + [0] * 3 + [0] * 1 + [1] * 2
    pred = [1] * 6 + [0] * 3 + [1] * 1 + [0] * 2
    assert mcc(pred, labels) == pytest.approx(16 / math.sqrt(1120), abs=1e-12)
    assert mcc(pred, labels) == pytest.approx(0.47809144373375745, abs=1e-12)
    assert accuracy(pred, labels) == pytest.approx(9 / 12)
    assert mcc(torch.tensor(pred), torch.tensor(labels)) == mcc(pred, labels)


def test_mcc_limits_and_undefined_cases() -> None:
    y = [0, 1, 1, 0, 1]
    assert mcc(y, y) == pytest.approx(1.0)
    assert mcc([1 - v for v in y], y) == pytest.approx(-1.0)
    assert mcc([1] * 5, y) == 0.0  # constant prediction: undefined, 0 as scikit-learn returns
    assert mcc(y, [0] * 5) == 0.0
    assert mcc([2, 2, 2], [2, 2, 2]) == 0.0
    assert math.isnan(mcc([], []))


@pytest.mark.parametrize("seed, k", [(0, 3), (1, 4), (2, 2)])
def test_multiclass_mcc_equals_the_correlation_of_one_hot_codes(seed, k) -> None:
    """Gorodkin's R_K is the Pearson correlation of the one-hot coded labels and predictions (float64,
    computed independently from centred one-hot matrices)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, k, 200))
    Y, P = np.eye(k)[y], np.eye(k)[p]
    Yc, Pc = Y - Y.mean(0), P - P.mean(0)
    expected = (Yc * Pc).sum() / math.sqrt((Yc * Yc).sum() * (Pc * Pc).sum())
    assert mcc(p, y) == pytest.approx(expected, abs=1e-12)


def test_intervals_wilson_for_accuracy_bootstrap_for_mcc() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.75, y, 1 - y)
    acc = score_estimate("sst2", "accuracy", p, y)
    correct = int((p == y).sum())
    assert acc.method == "wilson" and acc.n == 300 and acc.score == pytest.approx(correct / 300)
    assert (acc.low, acc.high) == pytest.approx(wilson_interval(correct, 300))
    est = score_estimate("cola", "mcc", p, y, subsample=True)
    assert est.method == "bootstrap-percentile" and est.subsample and est.metric == "mcc"
    assert est.low < est.score < est.high
    assert (est.low, est.high) == bootstrap_mcc_interval(p, y)  # seeded: the same interval every time
    # the percentile interval of the resampled MCCs, drawn independently by resampling the pairs themselves
    boot = []
    g = np.random.default_rng(123)
    classes = [np.nonzero(y == c)[0] for c in (0, 1)]
    for _ in range(BOOTSTRAP_RESAMPLES):
        idx = np.concatenate([g.choice(members, members.size) for members in classes])
        boot.append(mcc(p[idx], y[idx]))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert est.low == pytest.approx(lo, abs=0.02) and est.high == pytest.approx(hi, abs=0.02)
    perfect = score_estimate("cola", "mcc", y, y)
    assert (perfect.low, perfect.score, perfect.high) == (1.0, 1.0, 1.0)


# -- per-task scores ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_task_pool(folders):
    rng = np.random.default_rng(5)
    cola = tf.make_split("CoLA", rng.integers(0, 2, 30).tolist(), pairs=False)
    mnli = tf.make_split("MNLI", rng.integers(0, 3, 24).tolist(), pairs=True, num_labels=3)
    return tf.SavedModelPool({"cola": (folders["gpt2_cola"], cola, "mcc"), "mnli": (folders["gpt2"], mnli, "accuracy")})


def _reference_predictions(pool, task):
    return tf.one_at_a_time_logits(pool.reference_model(task), pool.tokenizer(task), pool.dataset(task)).argmax(1)


def test_text_task_scores_equal_the_metrics_of_transformers_predictions(two_task_pool) -> None:
    pool = two_task_pool
    calls: list[tuple[int, int, str]] = []
    body = {t: tf.canonical_body(pool.reference_model(t)) for t in pool.task_names}
    for t in pool.task_names:  # one task at a time: each fine-tune with its own body
        scores, counts = text_task_scores(pool, body[t], tasks=[t], device="cpu", batch_size=4,
                                          progress=lambda i, n, s: calls.append((i, n, s)))
        ref = _reference_predictions(pool, t)
        labels = pool.dataset(t).labels
        expected = mcc(ref, labels) if pool.metric(t) == "mcc" else accuracy(ref, labels)
        assert scores == {t: pytest.approx(expected, abs=1e-12)} and counts == {t: len(labels)}
        assert len(set(ref.tolist())) > 1  # mixed predictions: the score is not a degenerate 0
    assert calls[-1][0] == calls[-1][1] == len(pool.dataset("mnli"))


def test_all_tasks_by_default_one_model_at_a_time(two_task_pool) -> None:
    pool = two_task_pool
    pool.built.clear()
    body = tf.canonical_body(pool.reference_model("cola"))
    calls: list[tuple[int, int, str]] = []
    scores, counts = text_task_scores(pool, body, device="cpu", progress=lambda i, n, s: calls.append((i, n, s)))
    assert counts == {"cola": 30, "mnli": 24}
    assert list(scores) == ["cola", "mnli"] and pool.built == ["cola", "mnli"]
    assert -1.0 <= scores["cola"] <= 1.0 and 0.0 <= scores["mnli"] <= 1.0
    assert calls[-1][:2] == (54, 54) and [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_subsample_is_stratified_deterministic_and_reported_with_intervals(two_task_pool) -> None:
    pool = two_task_pool
    body = tf.canonical_body(pool.reference_model("mnli"))
    est = text_task_estimates(pool, body, tasks=["mnli"], device="cpu", subsample=12, batch_size=5)["mnli"]
    again = text_task_estimates(pool, body, tasks=["mnli"], device="cpu", subsample=12, batch_size=3)["mnli"]
    assert est == again
    labels = pool.dataset("mnli").labels
    idx = stratified_subsample(labels, 12, 0)
    ref = _reference_predictions(pool, "mnli")[idx]
    y = torch.tensor(labels)[idx]
    assert sorted(np.bincount(y.numpy(), minlength=3).tolist()) == sorted(
        (np.bincount(labels, minlength=3) * 12 / len(labels)).round().astype(int).tolist())
    assert est.n == 12 and est.subsample and est.method == "wilson"
    assert est.score == pytest.approx(float((ref == y).float().mean()))
    assert est.low <= est.score <= est.high
    scores, counts = text_task_scores(pool, body, tasks=["mnli"], device="cpu", subsample=12)
    assert counts == {"mnli": 12} and scores["mnli"] == pytest.approx(est.score)
    full = text_task_estimates(pool, body, tasks=["mnli"], device="cpu", subsample=10_000)["mnli"]
    assert full.n == len(labels) and not full.subsample
    cola = text_task_estimates(pool, tf.canonical_body(pool.reference_model("cola")), tasks=["cola"],
                               device="cpu", subsample=20)["cola"]
    assert cola.metric == "mcc" and cola.method == "bootstrap-percentile" and cola.n == 20
    assert cola.as_dict()["method"] == "bootstrap-percentile"
