"""Per-task quality of a decoder LLM without a benchmark harness: mean token loss on a local JSONL file.

A task of a causal-LM pool (fine-tunes that are ``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ``MistralForCausalLM``,
``GPT2LMHeadModel``, ... with no classification head) is scored on a JSONL file of its own, one example a line:

- ``{"text": "..."}``: every token of the text is scored (language modelling);
- ``{"prompt": "...", "completion": "..."}``: only the completion's tokens are scored (labels −100 on the prompt).

**Tokenisation.** The tokenizer of the checkpoint folder, with its own special tokens: a ``text`` line is
``tokenizer(text)``; a prompt/completion line is ``tokenizer(prompt)`` followed by
``tokenizer(completion, add_special_tokens=False)``, tokenised separately so the scored span starts exactly at the
completion (nothing is appended: put the EOS token in the completion if it should be scored). Sequences longer than
the model's positions are truncated on the right.

**Loss.** Token t is scored by the logits at position t − 1 (the causal shift of transformers' ``ForCausalLMLoss``),
cross-entropy in float32, labels −100 on prompt and padding. The **mean token loss** of a model on a task is
*pooled over tokens*: the sum of every scored token's negative log-likelihood over the number of scored tokens of
the whole file (a long example weighs more than a short one). That is transformers' own reduction:
``model(input_ids, attention_mask=..., labels=...).loss`` of the whole file as one batch is exactly this number
(``tests/eval/test_lm_loss.py`` checks it on tiny ``LlamaForCausalLM`` and ``GPT2LMHeadModel`` models). It is *not*
the mean over examples of each example's mean loss. Batches are right-padded with an attention mask: in a causal
model the real tokens of a padded row see the same positions and keys as unpadded, so the loss does not depend on
the batching (to float32 rounding).

**Normalised score** (issue 25, in place of NAI): with L_0 the base model's mean token loss on the task, L_t the
task's fine-tune's and L_M the evaluated model's,

    score = (L_0 − L_M) / (L_0 − L_t)

so the base scores 0 and the fine-tune on its own task 1, exactly (the same code computes all three losses on the
same tokens); it is higher-is-better, below 0 when the merge is worse than the base, above 1 when it beats the
fine-tune. It is undefined (NaN, logged) when the fine-tune's loss equals the base's.

**Subsample and intervals.** ``subsample=N``: a fixed, seeded subsample of N examples (seed 0), the same for the
three models. The 95 % interval is a paired bootstrap percentile interval over examples (Efron & Tibshirani 1993,
§13.3): examples are resampled with replacement :data:`BOOTSTRAP_RESAMPLES` times with a fixed seed, the three
pooled losses recomputed from the resampled examples' loss sums and token counts, and the score's 2.5th and 97.5th
percentiles taken (method ``"bootstrap-percentile"``).
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spectral.data.folders import DatasetError
from spectral.errors import ParameterError
from spectral.eval.text import percentile_interval
from spectral.metrics.estimate import stratified_subsample

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "TextFileError",
    "ExampleLosses",
    "LMEstimate",
    "TextFile",
    "bootstrap_normalised_interval",
    "encode_examples",
    "example_losses",
    "is_text_file",
    "lm_batches",
    "normalised_score",
    "read_jsonl",
    "subsample_indices",
]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
SUBSAMPLE_SEED = 0
#: tokens per padded batch (rows × width); the logits of a batch are rows × width × vocabulary floats
MAX_BATCH_TOKENS = 2048
#: file suffixes read as a per-task text file
TEXT_FILE_SUFFIXES = (".jsonl",)


class TextFileError(DatasetError):
    """A task's JSONL text file is missing, empty or has a line that is not ``text`` or ``prompt``/``completion``."""


def is_text_file(path: str | os.PathLike[str] | None) -> bool:
    """Whether a task's ``data`` is a JSONL text file (a language-modelling task) rather than a data folder."""
    return path is not None and Path(path).suffix.lower() in TEXT_FILE_SUFFIXES and not Path(path).is_dir()


@dataclass(frozen=True)
class TextFile:
    """The examples of one task's JSONL file: ``prompts[i]`` (``""`` for a ``text`` line, nothing unscored) and
    ``targets[i]`` (the scored text: the ``text`` or the ``completion``)."""

    path: Path
    prompts: tuple[str, ...]
    targets: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def labels(self) -> list[int]:
        """One stratum for every example (subsampling is uniform)."""
        return [0] * len(self.targets)


def read_jsonl(path: str | os.PathLike[str]) -> TextFile:
    """Read a task's JSONL file; every line is ``{"text": str}`` or ``{"prompt": str, "completion": str}`` (other
    keys are ignored; blank lines are skipped). Errors name the file and the line."""
    p = Path(path)
    if not p.is_file():
        raise TextFileError(f"{p}: text file not found")
    prompts: list[str] = []
    targets: list[str] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TextFileError(f"{p}:{lineno}: not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TextFileError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if "completion" in row or "prompt" in row:
                prompt, completion = row.get("prompt"), row.get("completion")
                if not isinstance(prompt, str) or not isinstance(completion, str):
                    raise TextFileError(f"{p}:{lineno}: 'prompt' and 'completion' must both be strings")
                prompts.append(prompt)
                targets.append(completion)
            elif isinstance(row.get("text"), str):
                prompts.append("")
                targets.append(row["text"])
            else:
                raise TextFileError(f"{p}:{lineno}: expected key 'text', or 'prompt' and 'completion' (strings); got "
                                f"keys {sorted(row)}")
    if not targets:
        raise TextFileError(f"{p}: no examples")
    return TextFile(p, tuple(prompts), tuple(targets))


def _max_length(model: nn.Module, tokenizer: Any) -> int | None:
    from spectral.eval.text import _max_length as limit

    return limit(model, tokenizer)


def encode_examples(tokenizer: Any, data: TextFile, indices: Sequence[int], max_length: int | None
                    ) -> list[tuple[list[int], int]]:
    """``(input_ids, first_scored)`` per example: the prompt's tokens (with the tokenizer's special tokens), then
    the target's (without); tokens from ``first_scored`` on are scored (0 for a ``text`` line: all, and the first
    token has no prediction). Truncated on the right to ``max_length``."""
    out = []
    for i in indices:
        prompt, target = data.prompts[i], data.targets[i]
        if prompt:
            head = list(tokenizer(prompt)["input_ids"])
            tail = list(tokenizer(target, add_special_tokens=False)["input_ids"])
        else:
            head, tail = [], list(tokenizer(target)["input_ids"])
        ids = head + tail
        if max_length is not None:
            ids = ids[:max_length]
        out.append((ids, len(head)))
    return out


def lm_batches(encoded: Sequence[tuple[list[int], int]], pad_id: int, *, max_batch_tokens: int = MAX_BATCH_TOKENS,
               max_rows: int = 64) -> Iterator[tuple[list[int], dict[str, Tensor]]]:
    """``(positions, batch)``: right-padded ``input_ids``, ``attention_mask`` and ``labels`` (−100 on unscored and
    padding tokens), examples sorted by length and grouped so rows × width ≤ ``max_batch_tokens`` (one row at
    least)."""
    order = sorted(range(len(encoded)), key=lambda j: len(encoded[j][0]))
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_rows and \
                (end - start + 1) * max(1, len(encoded[order[end]][0])) <= max_batch_tokens:
            end += 1
        sel = order[start:end]
        width = max(1, max(len(encoded[j][0]) for j in sel))
        ids = torch.full((len(sel), width), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(sel), width), dtype=torch.long)
        labels = torch.full((len(sel), width), -100, dtype=torch.long)
        for r, j in enumerate(sel):
            seq, first = encoded[j]
            n = len(seq)
            ids[r, :n] = torch.as_tensor(seq, dtype=torch.long)
            mask[r, :n] = 1
            labels[r, first:n] = ids[r, first:n]
        yield sel, {"input_ids": ids, "attention_mask": mask, "labels": labels}
        start = end


@dataclass(frozen=True)
class ExampleLosses:
    """Per-example sums of scored token losses (float64) and scored-token counts of one model on one task."""

    sums: np.ndarray
    tokens: np.ndarray

    @property
    def mean(self) -> float:
        """Mean token loss pooled over tokens (Σ sums / Σ tokens)."""
        total = float(self.tokens.sum())
        return float(self.sums.sum()) / total if total else math.nan


def example_losses(model: nn.Module, tokenizer: Any, data: TextFile, *, indices: Sequence[int] | None = None,
                   device: str | torch.device | None = None, max_batch_tokens: int = MAX_BATCH_TOKENS,
                   progress: Callable[[int], None] | None = None) -> ExampleLosses:
    """Streamed token losses of a causal LM on ``data`` (or on ``indices`` of it, in their order): per example the
    sum of its scored tokens' cross-entropies and their number. Only those two numbers per example are kept."""
    from spectral.eval.text import _pad_id

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    idx = list(range(len(data))) if indices is None else [int(i) for i in indices]
    encoded = encode_examples(tokenizer, data, idx, _max_length(model, tokenizer))
    pad_id = _pad_id(model, tokenizer)
    sums = np.zeros(len(idx), dtype=np.float64)
    tokens = np.zeros(len(idx), dtype=np.int64)
    done = 0
    with torch.inference_mode():
        for sel, batch in lm_batches(encoded, pad_id, max_batch_tokens=max_batch_tokens):
            labels = batch.pop("labels")
            logits = model(**{k: v.to(dev) for k, v in batch.items()}).logits
            # token t is predicted at t - 1 (transformers' ForCausalLMLoss: labels padded by one -100 and shifted)
            shift = labels[:, 1:].to(dev)
            nll = nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), shift.flatten(),
                                              ignore_index=-100, reduction="none").view(shift.shape)
            scored = shift != -100
            sums[sel] = nll.double().sum(1).cpu().numpy()
            tokens[sel] = scored.sum(1).cpu().numpy()
            del logits, nll
            done += len(sel)
            if progress is not None:
                progress(done)
    return ExampleLosses(sums, tokens)


def subsample_indices(n: int, subsample: int | None) -> list[int] | None:
    """Sorted indices of the fixed, seeded (seed 0) subsample of ``subsample`` of ``n`` examples, or None for all."""
    if not subsample or int(subsample) >= n:
        return None
    return stratified_subsample([0] * n, int(subsample), SUBSAMPLE_SEED).tolist()


def normalised_score(loss_base: float, loss_merged: float, loss_finetuned: float) -> float:
    """(L_0 − L_M) / (L_0 − L_t): 0 for the base, 1 for the fine-tune, NaN when L_t = L_0."""
    denom = loss_base - loss_finetuned
    if denom == 0 or not math.isfinite(denom):
        return math.nan
    return (loss_base - loss_merged) / denom


def bootstrap_normalised_interval(base: ExampleLosses, merged: ExampleLosses, finetuned: ExampleLosses, *,
                                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                                  level: float = 0.95, chunk: int = 250) -> tuple[float, float]:
    """Paired bootstrap percentile interval of the normalised score over examples (module docstring): each
    resample weighs example i by its multiplicity w_i ~ Multinomial(n, 1/n), L = Σ w_i·sum_i / Σ w_i·tokens_i."""
    n = len(base.sums)
    if not (len(merged.sums) == len(finetuned.sums) == n):
        raise ParameterError(f"bootstrap: the three models were scored on {n}, {len(merged.sums)} and "
                             f"{len(finetuned.sums)} examples; expected the same examples")
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    stacked = np.stack([base.sums, merged.sums, finetuned.sums, base.tokens.astype(np.float64)], axis=1)  # (n, 4)
    scores = []
    for start in range(0, resamples, chunk):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, resamples - start)).astype(np.float64)
        agg = w @ stacked  # (r, 4)
        with np.errstate(invalid="ignore", divide="ignore"):
            lb, lm, lf = (agg[:, j] / agg[:, 3] for j in range(3))
            scores.append((lb - lm) / (lb - lf))
    samples = np.concatenate(scores)
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return math.nan, math.nan
    return percentile_interval(samples, level)


@dataclass(frozen=True)
class LMEstimate:
    """A language-modelling task's normalised score with its 95 % interval and the three mean token losses."""

    task: str
    score: float
    low: float
    high: float
    loss: float
    loss_base: float
    loss_finetuned: float
    n: int  # examples
    tokens: int  # scored tokens
    subsample: bool

    @property
    def metric(self) -> str:
        return "normalised"

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "score": self.score, "low": self.low, "high": self.high,
                "loss": self.loss, "loss_base": self.loss_base, "loss_finetuned": self.loss_finetuned, "n": self.n,
                "tokens": self.tokens, "subsample": self.subsample}


def lm_task_estimates(pool: Any, body: Mapping[str, Tensor], *, tasks: Sequence[str], split: str = "test",
                      device: str | torch.device = "auto", progress: Progress | None = None,
                      subsample: int | None = None, max_batch_tokens: int = MAX_BATCH_TOKENS
                      ) -> dict[str, LMEstimate]:
    """Normalised score (module docstring) of a canonical body on each language-modelling task of ``pool`` (an
    :class:`~spectral.checkpoints.hf_pool.HFPool`): the body in the task's own causal-LM class, its tokenizer, its
    JSONL file (``pool.dataset(task, split)``); the base's and the fine-tune's losses on the same examples come
    from ``pool.reference_losses`` (computed once per pool, task, split and subsample)."""
    from spectral.linalg import resolve_device

    report = progress or (lambda i, n, t: None)
    dev = resolve_device(device)
    data = {t: pool.dataset(t, split) for t in tasks}
    chosen = {t: subsample_indices(len(data[t]), subsample) for t in tasks}
    total = sum(len(chosen[t]) if chosen[t] is not None else len(data[t]) for t in tasks)
    done = 0
    report(0, total, "evaluating")
    out: dict[str, LMEstimate] = {}
    for t in tasks:
        offset = done
        step = (lambda k, t=t, offset=offset: report(offset + k, total, f"evaluating {t}"))
        base, ft = pool.reference_losses(t, split, subsample, device=dev, max_batch_tokens=max_batch_tokens)
        model = pool.task_model(t, body, dev)
        merged = example_losses(model, pool.tokenizer(t), data[t], indices=chosen[t], device=dev,
                                max_batch_tokens=max_batch_tokens, progress=step)
        del model
        lb, lm, lf = base.mean, merged.mean, ft.mean
        score = normalised_score(lb, lm, lf)
        if math.isnan(score):
            log.warning("task %s: the fine-tune's mean token loss equals the base's (%.6g): no normalised score", t, lb)
        low, high = bootstrap_normalised_interval(base, merged, ft)
        n = len(merged.sums)
        out[t] = LMEstimate(t, score, low, high, lm, lb, lf, n, int(merged.tokens.sum()), chosen[t] is not None)
        done += n
    return out
