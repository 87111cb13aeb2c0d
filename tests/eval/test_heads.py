"""zeroshot_head: generic over open_clip CLIPs; rows L2-normalised; template forms."""
from __future__ import annotations

import torch

from spectral.eval.heads import render_prompt, zeroshot_head
from spectral.zoo import ModelSpec, create_clip, get_tokenizer


def test_zeroshot_head_shape_norm_and_mean_of_prompts():
    spec = ModelSpec(width=32, layers=1, head_width=16, embed_dim=16, text_width=32, text_layers=1)
    torch.manual_seed(0)
    model = create_clip(spec).train()
    tok = get_tokenizer(spec)
    head = zeroshot_head(model, tok, ["cat", "dog", "bird"], ["a photo of a {}.", "a {c}.", lambda c: f"{c}!"])
    assert head.shape == (3, 16) and head.dtype == torch.float32
    assert torch.allclose(head.norm(dim=1), torch.ones(3), atol=1e-6)
    assert model.training  # mode restored
    with torch.inference_mode():
        text = model.eval().encode_text(tok(["a photo of a cat.", "a cat.", "cat!"]))
        feats = torch.nn.functional.normalize(text, dim=-1)
    assert torch.allclose(head[0], torch.nn.functional.normalize(feats.mean(0), dim=0), atol=1e-5)
    again = zeroshot_head(model, tok, ["cat", "dog", "bird"], ["a photo of a {}.", "a {c}.", lambda c: f"{c}!"])
    assert torch.equal(head, again)


def test_render_prompt_forms():
    assert render_prompt("a {}.", "x") == "a x."
    assert render_prompt("a {c}.", "x") == "a x."
    assert render_prompt(lambda c: c.upper(), "x") == "X"
