"""The zoo's CLIP is a real open_clip model with ViT-B/32's parameter names."""
from __future__ import annotations

import re

import open_clip
import pytest
import torch

from spectral.zoo import ModelSpec, create_clip, get_tokenizer, register_model_config

# the image-tower names of open_clip's ViT-B-32 (per block), which every loader and method relies on
VIT_B32_TOP = {
    "visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.conv1.weight",
    "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
}
VIT_B32_BLOCK = {
    "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
    "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
    "mlp.c_proj.bias",
}


def _visual_names(state):
    top, blocks = set(), {}
    for k in state:
        if not k.startswith("visual."):
            continue
        m = re.match(r"visual\.transformer\.resblocks\.(\d+)\.(.+)$", k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
        else:
            top.add(k)
    return top, blocks


def test_registered_with_open_clip_and_vit_b32_names():
    spec = ModelSpec()
    name = register_model_config(spec)
    assert name in open_clip.list_models()
    model = create_clip(spec)
    assert isinstance(model.visual, open_clip.model.VisionTransformer)
    top, blocks = _visual_names(model.state_dict())
    assert top == VIT_B32_TOP
    assert sorted(blocks) == list(range(spec.layers))
    assert all(names == VIT_B32_BLOCK for names in blocks.values())
    sd = model.state_dict()
    assert sd["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * spec.width, spec.width)
    assert sd["visual.proj"].shape == (spec.width, spec.embed_dim)
    assert sd["visual.positional_embedding"].shape == ((spec.image_size // spec.patch_size) ** 2 + 1, spec.width)
    assert any(k.startswith("transformer.resblocks.") for k in sd)  # a text tower too
    tokens = get_tokenizer(spec)(["a photo of a square."])
    assert tokens.shape == (1, spec.context_length)
    with torch.inference_mode():
        assert model.encode_text(tokens).shape == (1, spec.embed_dim)
        assert model.encode_image(torch.zeros(2, 3, 32, 32)).shape == (2, spec.embed_dim)


@pytest.mark.slow
def test_same_names_as_real_vit_b32():
    real = open_clip.create_model("ViT-B-32", pretrained=None)
    top_r, blocks_r = _visual_names(real.state_dict())
    top, blocks = _visual_names(create_clip(ModelSpec()).state_dict())
    assert top == top_r and blocks[0] == blocks_r[0]
