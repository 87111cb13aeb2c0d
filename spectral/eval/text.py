"""Text classification evaluation of a language-model pool (the AdaRank paper's GLUE setting, §6.3, Tables 2-3).

For each task the pool gives the fine-tune's model class with a (merged) body loaded
(``pool.task_model(task, body, device)``), its tokenizer (``pool.tokenizer(task)``), its test split
(``pool.dataset(task, split)``, a :class:`~spectral.data.glue.TextSplit`) and its metric (``pool.metric(task)``:
``"mcc"`` for CoLA, ``"accuracy"`` otherwise). Nothing else of the pool is used.

- **Tokenisation**: the tokenizer of the checkpoint folder, sentence pairs through its own pair template
  (``tokenizer(text_a, text_b)``, as FusionBench tokenises GLUE for GPT-2), truncated to the model's positions.
- **Padded batches, logits equal to one example at a time**: examples are padded on the right with an attention
  mask. The pad id is the model config's ``pad_token_id`` (else the tokenizer's pad token, else its EOS, GPT-2's
  convention, and the config is given that id): ``GPT2ForSequenceClassification`` (and the Llama family) pool the
  logits of the rightmost token that is not ``config.pad_token_id``, and RoBERTa numbers positions from
  ``config.pad_token_id``, so padding with that id leaves every real token's position, attention and the pooled
  token as in an unpadded forward (checked against transformers 5.25's ``modeling_gpt2.py``: right padding keeps
  the position ids of the real tokens, and the causal mask keeps padding out of their attention).
- **Streamed**: examples are tokenised a chunk at a time (sorted by length within the chunk to pad less),
  batched, forwarded, and only each example's predicted class is kept; no split's logits are ever held.
- **Subsample** (``subsample=N``): a fixed, seeded, label-stratified subsample of N examples per task
  (:func:`spectral.metrics.estimate.stratified_subsample`, seed 0), as the image path does.
- **Intervals** (:func:`text_task_estimates`), 95 %: accuracy gets the Wilson score interval
  (:func:`spectral.metrics.estimate.wilson_interval`, method ``"wilson"``); MCC gets a stratified bootstrap
  percentile interval (method ``"bootstrap-percentile"``, Efron & Tibshirani 1993, §13.3): the (label, prediction)
  pairs are resampled with replacement within each true label, keeping the class sizes of the stratified
  subsample, :data:`BOOTSTRAP_RESAMPLES` times with a fixed seed; the interval is the 2.5th and 97.5th percentiles
  of the resampled MCCs. A full split's score is exact; its interval is still the one of that many examples.

Metrics: :func:`mcc` is Matthews' correlation in its multi-class form (Gorodkin 2004, the R_K statistic, as
scikit-learn computes it), 0 where it is undefined (a constant prediction or label column), as scikit-learn
returns; :func:`accuracy` the fraction correct.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spectral.errors import CheckpointError, ParameterError
from spectral.linalg import resolve_device
from spectral.metrics.estimate import Z95, stratified_subsample, wilson_interval

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "TextEstimate",
    "accuracy",
    "bootstrap_mcc_interval",
    "confusion_matrix",
    "mcc",
    "mcc_from_confusion",
    "pad_batch",
    "score_estimate",
    "text_logits",
    "text_predictions",
    "text_task_estimates",
    "text_task_scores",
]

SUBSAMPLE_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: examples tokenised at once (then sorted by length and cut into batches)
TOKENISE_CHUNK = 2048
#: model types whose position ids start after the padding index (positions = padding_idx + 1 + i)
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "roberta-prelayernorm", "xlm-roberta-xl"}


# -- metrics ---------------------------------------------------------------------------------------------------------
def confusion_matrix(pred: Sequence[int] | Tensor | np.ndarray, labels: Sequence[int] | Tensor | np.ndarray,
                     num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of examples with true label i predicted j (int64, K × K)."""
    p = np.asarray(pred.cpu() if isinstance(pred, Tensor) else pred, dtype=np.int64).ravel()
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels, dtype=np.int64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"predictions and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    k = int(num_classes) if num_classes is not None else int(max(p.max(initial=-1), y.max(initial=-1)) + 1)
    k = max(k, 1)
    return np.bincount(y * k + p, minlength=k * k).reshape(k, k)


def mcc_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Matthews correlation of one K × K confusion matrix or a batch (..., K, K), in float64.

    Multi-class form (Gorodkin 2004): with t_k the true count of class k, p_k its predicted count, c the number
    correct and s the number of examples, MCC = (c·s − Σ_k t_k p_k) / sqrt((s² − Σ_k p_k²)(s² − Σ_k t_k²)).
    For K = 2 it is (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). 0 where the denominator is 0."""
    cm = np.asarray(confusion, dtype=np.float64)
    t = cm.sum(axis=-1)
    p = cm.sum(axis=-2)
    c = np.trace(cm, axis1=-2, axis2=-1)
    s = t.sum(axis=-1)
    cov_yp = c * s - (t * p).sum(axis=-1)
    cov_pp = s * s - (p * p).sum(axis=-1)
    cov_yy = s * s - (t * t).sum(axis=-1)
    denom = np.sqrt(cov_pp * cov_yy)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, cov_yp / np.where(denom > 0, denom, 1.0), 0.0)
    return out


def mcc(pred: Sequence[int] | Tensor | np.ndarray, labels: Sequence[int] | Tensor | np.ndarray) -> float:
    """Matthews correlation coefficient of predictions against labels (multi-class form; 0 when undefined)."""
    if len(pred) == 0:
        return math.nan
    return float(mcc_from_confusion(confusion_matrix(pred, labels)))


def accuracy(pred: Sequence[int] | Tensor | np.ndarray, labels: Sequence[int] | Tensor | np.ndarray) -> float:
    """Fraction of predictions equal to their labels (NaN for no examples)."""
    cm = confusion_matrix(pred, labels)
    n = int(cm.sum())
    return float(np.trace(cm)) / n if n else math.nan


def bootstrap_mcc_interval(pred: Sequence[int] | Tensor | np.ndarray, labels: Sequence[int] | Tensor | np.ndarray,
                           *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                           level: float = 0.95) -> tuple[float, float]:
    """Stratified bootstrap percentile interval of the MCC (see the module docstring).

    Resampling n_k pairs with replacement within true class k makes that class's row of the confusion matrix a
    Multinomial(n_k, row_k / n_k) draw, so each resample is drawn as K multinomial rows (exactly the same law as
    resampling the pairs, without materialising them)."""
    cm = confusion_matrix(pred, labels)
    if cm.sum() == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = []
    for row in cm:
        n_k = int(row.sum())
        rows.append(rng.multinomial(n_k, row / n_k, size=resamples) if n_k else np.zeros((resamples, len(row)),
                                                                                           dtype=np.int64))
    return percentile_interval(mcc_from_confusion(np.stack(rows, axis=1)), level)  # (resamples, K, K) → (resamples,)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The bootstrap percentile interval of ``samples`` at ``level`` (the central ``level`` share of them)."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class TextEstimate:
    """A task's score on ``n`` examples with its 95 % interval (``method`` says which interval)."""

    task: str
    metric: str  # "mcc" or "accuracy"
    score: float
    low: float
    high: float
    n: int
    method: str  # "wilson" (accuracy) or "bootstrap-percentile" (MCC)
    subsample: bool  # True when ``n`` is a subsample of the split, False for the whole split

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "score": self.score, "low": self.low, "high": self.high,
                "n": self.n, "method": self.method, "subsample": self.subsample}


def score_estimate(task: str, metric: str, pred: Sequence[int] | Tensor | np.ndarray,
                   labels: Sequence[int] | Tensor | np.ndarray, *, subsample: bool = False) -> TextEstimate:
    """Score and 95 % interval of predictions: Wilson for accuracy, stratified bootstrap percentile for MCC."""
    n = len(labels)
    if metric == "mcc":
        low, high = bootstrap_mcc_interval(pred, labels)
        return TextEstimate(task, metric, mcc(pred, labels), low, high, n, "bootstrap-percentile", subsample)
    if metric != "accuracy":
        raise ParameterError(f"task {task!r}: unknown metric {metric!r}; expected 'mcc' or 'accuracy'")
    correct = int(np.trace(confusion_matrix(pred, labels))) if n else 0
    low, high = wilson_interval(correct, n, Z95)
    return TextEstimate(task, metric, correct / n if n else math.nan, low, high, n, "wilson", subsample)


# -- tokenising and batching -----------------------------------------------------------------------------------------
def _max_length(model: nn.Module, tokenizer: Any) -> int | None:
    config = getattr(model, "config", None)
    limit = None
    for attr in ("n_positions", "max_position_embeddings"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limit = value
            break
    if limit is not None and getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (1 if pad is None else int(pad)) + 1
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 10**8:
        limit = tok_limit if limit is None else min(limit, tok_limit)
    return limit


def _pad_id(model: nn.Module, tokenizer: Any) -> int:
    """The id to pad with (see the module docstring); sets it on the model's config when the config has none."""
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        if pad is None:
            raise CheckpointError("neither the model config nor the tokenizer names a pad or EOS token: batches "
                                  "cannot be padded")
        if config is not None:
            config.pad_token_id = int(pad)  # GPT2ForSequenceClassification refuses batches > 1 without it
    return int(pad)


def pad_batch(encoded: Sequence[Mapping[str, Sequence[int]]], pad_id: int) -> dict[str, Tensor]:
    """Right-padded ``input_ids`` (with ``pad_id``), ``attention_mask`` and, when present, ``token_type_ids``."""
    width = max(len(e["input_ids"]) for e in encoded)
    n = len(encoded)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long) if "token_type_ids" in encoded[0] else None
    for i, e in enumerate(encoded):
        length = len(e["input_ids"])
        ids[i, :length] = torch.as_tensor(e["input_ids"], dtype=torch.long)
        mask[i, :length] = 1
        if types is not None:
            types[i, :length] = torch.as_tensor(e["token_type_ids"], dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


def encode_batch(model: nn.Module, tokenizer: Any, text_a: Sequence[str],
                 text_b: Sequence[str] | None = None) -> dict[str, Tensor]:
    """One right-padded batch of sentences (or sentence pairs) for ``model``, tokenised and truncated exactly as
    :func:`text_logits` does (the model's pad id and position limit), on CPU."""
    pad_id = _pad_id(model, tokenizer)
    max_length = _max_length(model, tokenizer)
    kwargs: dict[str, Any] = {"truncation": max_length is not None, "max_length": max_length}
    enc = tokenizer(list(text_a), list(text_b), **kwargs) if text_b is not None else tokenizer(list(text_a), **kwargs)
    keep = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return pad_batch([{k: enc[k][j] for k in keep} for j in range(len(text_a))], pad_id)


def text_logits(model: nn.Module, tokenizer: Any, split: Any, *, indices: Sequence[int] | Tensor | None = None,
                batch_size: int = 64, device: str | torch.device | None = None,
                chunk: int = TOKENISE_CHUNK) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches ``(positions, logits)`` of a text split: ``positions`` index the split's examples (a subsample's
    chosen ones when ``indices`` is given), ``logits`` (float32, on CPU) are the model's for those examples, in
    batches of at most ``batch_size``. Order within a chunk follows token length, not position."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    pad_id = _pad_id(model, tokenizer)
    max_length = _max_length(model, tokenizer)
    order = torch.as_tensor(indices, dtype=torch.long) if indices is not None else torch.arange(len(split.labels))
    text_b = getattr(split, "text_b", None)
    keep = ("input_ids", "attention_mask", "token_type_ids")
    with torch.inference_mode():
        for start in range(0, len(order), chunk):
            positions = order[start:start + chunk].tolist()
            a = [split.text_a[i] for i in positions]
            kwargs: dict[str, Any] = {"truncation": max_length is not None, "max_length": max_length}
            enc = tokenizer(a, [text_b[i] for i in positions], **kwargs) if text_b is not None \
                else tokenizer(a, **kwargs)
            items = [{k: enc[k][j] for k in keep if k in enc} for j in range(len(positions))]
            by_length = sorted(range(len(items)), key=lambda j: len(items[j]["input_ids"]))
            for b in range(0, len(by_length), batch_size):
                sel = by_length[b:b + batch_size]
                batch = {k: v.to(dev) for k, v in pad_batch([items[j] for j in sel], pad_id).items()}
                logits = model(**batch).logits
                yield torch.as_tensor([positions[j] for j in sel], dtype=torch.long), logits.float().cpu()


def text_predictions(model: nn.Module, tokenizer: Any, split: Any, *, indices: Sequence[int] | Tensor | None = None,
                     batch_size: int = 64, device: str | torch.device | None = None,
                     progress: Callable[[int], None] | None = None) -> Tensor:
    """Predicted class (argmax of the logits) of every example of ``split`` (or of ``indices``, in their order),
    streamed: only the predictions are kept. ``progress(done)`` is called after each batch."""
    order = torch.as_tensor(indices, dtype=torch.long) if indices is not None else torch.arange(len(split.labels))
    slot = torch.full((len(split.labels),), -1, dtype=torch.long)
    slot[order] = torch.arange(len(order))
    pred = torch.full((len(order),), -1, dtype=torch.long)
    done = 0
    for positions, logits in text_logits(model, tokenizer, split, indices=order, batch_size=batch_size,
                                         device=device):
        pred[slot[positions]] = logits.argmax(-1)
        done += len(positions)
        del logits
        if progress is not None:
            progress(done)
    return pred


# -- per-task scores -------------------------------------------------------------------------------------------------
def _task_predictions(pool: Any, body: Mapping[str, Tensor], tasks: Sequence[str] | None, split: str,
                      device: str | torch.device, batch_size: int, progress: Progress | None,
                      subsample: int | None) -> Iterator[tuple[str, Tensor, Tensor, bool]]:
    """(task, predictions, labels, is_subsample) per task, one task model at a time."""
    progress = progress or (lambda i, n, t: None)
    tasks = list(tasks) if tasks is not None else list(pool.task_names)
    dev = resolve_device(device)
    splits = {t: pool.dataset(t, split) for t in tasks}
    chosen: dict[str, Tensor | None] = {}
    for t in tasks:
        n = len(splits[t].labels)
        chosen[t] = stratified_subsample(splits[t].labels, int(subsample), SUBSAMPLE_SEED) \
            if subsample and int(subsample) < n else None
    total = sum(len(chosen[t]) if chosen[t] is not None else len(splits[t].labels) for t in tasks)
    done = 0
    progress(0, total, "evaluating")
    for t in tasks:
        model = pool.task_model(t, body, dev)
        model.eval()
        tokenizer = pool.tokenizer(t)
        labels = torch.as_tensor(splits[t].labels, dtype=torch.long)
        idx = chosen[t]
        offset = done
        pred = text_predictions(model, tokenizer, splits[t], indices=idx, batch_size=batch_size, device=dev,
                                progress=lambda k, t=t, offset=offset: progress(offset + k, total, f"evaluating {t}"))
        del model
        y = labels if idx is None else labels[idx]
        done += len(y)
        yield t, pred, y, idx is not None


def text_task_scores(pool: Any, body: Mapping[str, Tensor], *, tasks: Sequence[str] | None = None,
                     split: str = "test", device: str | torch.device = "auto", batch_size: int = 64,
                     progress: Progress | None = None, subsample: int | None = None
                     ) -> tuple[dict[str, float], dict[str, int]]:
    """(score per task, number of examples it rests on) of a canonical body on each task's split: MCC in [−1, 1]
    where ``pool.metric(task)`` is ``"mcc"``, accuracy in [0, 1] otherwise; on a label-stratified ``subsample`` of
    each split when given. Models are built one task at a time; examples are streamed."""
    scores: dict[str, float] = {}
    counts: dict[str, int] = {}
    for t, pred, y, _ in _task_predictions(pool, body, tasks, split, device, batch_size, progress, subsample):
        metric = pool.metric(t)
        scores[t] = mcc(pred, y) if metric == "mcc" else accuracy(pred, y)
        counts[t] = len(y)
    return scores, counts


def text_task_estimates(pool: Any, body: Mapping[str, Tensor], *, tasks: Sequence[str] | None = None,
                        split: str = "test", device: str | torch.device = "auto", batch_size: int = 64,
                        progress: Progress | None = None, subsample: int | None = None) -> dict[str, TextEstimate]:
    """As :func:`text_task_scores`, with each score's 95 % interval: :class:`TextEstimate` per task (Wilson for
    accuracy, stratified bootstrap percentile for MCC; see the module docstring)."""
    out: dict[str, TextEstimate] = {}
    for t, pred, y, is_sub in _task_predictions(pool, body, tasks, split, device, batch_size, progress, subsample):
        out[t] = score_estimate(t, pool.metric(t), pred, y, subsample=is_sub)
    return out
