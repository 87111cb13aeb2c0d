"""Mean token loss on a JSONL text file (issue 25 item 3): equal to transformers' own loss, streamed in padded
batches, and the normalised score's bootstrap interval; tiny LlamaForCausalLM / GPT2LMHeadModel models written
here."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lm_fixtures import GPT2_EOS, causal_task_lines, gpt2_tokenizer, llama_tokenizer  # noqa: E402

from spectral.eval.lm_loss import (  # noqa: E402
    ExampleLosses,
    TextFileError,
    bootstrap_normalised_interval,
    encode_examples,
    example_losses,
    normalised_score,
    read_jsonl,
)


def _model(kind: str):
    import transformers

    torch.manual_seed(0)
    if kind == "gpt2":
        tok = gpt2_tokenizer()
        eos = tok.convert_tokens_to_ids(GPT2_EOS)
        cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=32,
                                      bos_token_id=eos, eos_token_id=eos)
        return transformers.GPT2LMHeadModel(cfg).eval(), tok
    tok = llama_tokenizer()
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                   num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=64,
                                   pad_token_id=tok.convert_tokens_to_ids("</s>"))
    return transformers.LlamaForCausalLM(cfg).eval(), tok


def _file(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "task.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _transformers_loss(model, encoded: list[tuple[list[int], int]], pad_id: int) -> float:
    """transformers' own loss of the whole file as one right-padded batch (labels −100 on unscored and padding)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, first) in enumerate(encoded):
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
        labels[i, first:len(seq)] = torch.tensor(seq[first:])
    with torch.no_grad():
        return float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("layout", ["text", "prompt_completion"])
def test_mean_token_loss_equals_transformers_loss(tmp_path, kind, layout):
    """Pooled over tokens, in small padded batches: transformers' loss of the whole file as one batch; and each
    example's own loss is transformers' loss of that example alone, unpadded."""
    model, tok = _model(kind)
    rows = causal_task_lines("chat" if layout == "prompt_completion" else "math", 10)
    data = read_jsonl(_file(tmp_path, rows))
    assert all(p for p in data.prompts) == (layout == "prompt_completion")
    got = example_losses(model, tok, data, max_batch_tokens=24)  # several batches of different widths
    limit = model.config.max_position_embeddings  # GPT-2: n_positions = 32, some rows are truncated to it
    encoded = encode_examples(tok, data, range(len(data)), limit)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else tok.eos_token_id
    assert got.mean == pytest.approx(_transformers_loss(model, encoded, pad), rel=1e-5, abs=1e-6)
    for i, (seq, first) in enumerate(encoded[:4]):
        labels = torch.tensor([-100] * first + seq[first:])
        with torch.no_grad():
            own = float(model(input_ids=torch.tensor([seq]), labels=labels[None]).loss)
        assert got.sums[i] / got.tokens[i] == pytest.approx(own, rel=1e-5, abs=1e-6)
        # the shift: the first token of a sequence is never scored
        assert got.tokens[i] == len(seq) - max(first, 1)


def test_prompt_tokens_are_not_scored(tmp_path):
    model, tok = _model("llama")
    data = read_jsonl(_file(tmp_path, [{"prompt": "hello how are", "completion": " you fine"},
                                       {"prompt": "bye bye bye bye bye", "completion": " you fine"}]))
    got = example_losses(model, tok, data)
    n_completion = len(tok(" you fine", add_special_tokens=False)["input_ids"])
    assert got.tokens.tolist() == [n_completion, n_completion]


def test_pooled_is_not_the_mean_over_examples():
    losses = ExampleLosses(np.array([1.0, 10.0]), np.array([1, 4]))
    assert losses.mean == pytest.approx(11.0 / 5)  # not (1 + 2.5) / 2


def test_normalised_score_and_its_interval():
    assert normalised_score(4.0, 4.0, 2.0) == 0.0
    assert normalised_score(4.0, 2.0, 2.0) == 1.0
    assert normalised_score(4.0, 5.0, 2.0) == -0.5
    assert normalised_score(4.0, 1.0, 2.0) == 1.5
    assert math.isnan(normalised_score(3.0, 1.0, 3.0))
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 9, 40)
    base = ExampleLosses(tokens * 5.0 + rng.random(40), tokens)
    ft = ExampleLosses(tokens * 2.0 + rng.random(40), tokens)
    merged = ExampleLosses(tokens * 3.0 + rng.random(40), tokens)
    low, high = bootstrap_normalised_interval(base, merged, ft)
    point = normalised_score(base.mean, merged.mean, ft.mean)
    assert low < point < high
    assert (low, high) == bootstrap_normalised_interval(base, merged, ft)  # seeded
    # an independent transcription: resample example indices, recompute the three pooled losses
    g = np.random.default_rng(0)
    draws = []
    for _ in range(2000):
        idx = g.integers(0, 40, 40)
        lb, lm, lf = (x.sums[idx].sum() / x.tokens[idx].sum() for x in (base, merged, ft))
        draws.append((lb - lm) / (lb - lf))
    ref_low, ref_high = np.percentile(draws, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.03) and high == pytest.approx(ref_high, abs=0.03)
    # the base against itself: 0 in every resample
    assert bootstrap_normalised_interval(base, base, ft) == (0.0, 0.0)


@pytest.mark.parametrize("line, message", [
    ("not json", "task.jsonl:2: not a JSON object"),
    ('["a"]', "task.jsonl:2: expected a JSON object"),
    ('{"prompt": "a"}', "task.jsonl:2: 'prompt' and 'completion' must both be strings"),
    ('{"content": "a"}', "task.jsonl:2: expected key 'text'"),
])
def test_bad_lines_are_named(tmp_path, line, message):
    p = tmp_path / "task.jsonl"
    p.write_text('{"text": "ok"}\n' + line + "\n")
    with pytest.raises(TextFileError, match=message.replace("[", r"\[")):
        read_jsonl(p)


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(TextFileError, match="nope.jsonl: text file not found"):
        read_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TextFileError, match="empty.jsonl: no examples"):
        read_jsonl(tmp_path / "empty.jsonl")
