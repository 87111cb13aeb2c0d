"""Writers of tiny checkpoints in every supported format, for the loader tests.

The Hugging Face writer implements the open_clip → transformers naming independently of the library's
keymap (which goes the other way), so a round trip checks the mapping rather than restating it.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file
from torch import Tensor

from spectral.checkpoints import shims

TINY = "spectral-test-tiny"
TINY_WIDE = "spectral-test-tiny-wide"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_WIDE_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_configs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in ((TINY, TINY_CFG), (TINY_WIDE, TINY_WIDE_CFG)):
        if open_clip.get_model_config(name) is None:
            (folder / f"{name}.json").write_text(json.dumps(cfg))
            open_clip.add_model_config(folder / f"{name}.json")


def make_clip(seed: int, name: str = TINY) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None).eval()


def finetune(model: torch.nn.Module, seed: int, scale: float = 0.05, *, keep_text: bool = True) -> torch.nn.Module:
    """A copy whose image tower is moved by small random deltas (the text tower stays; ``keep_text=False``
    leaves out the text transformer, as the task_vectors / tall_masks encoders do, and saves the copy)."""
    if keep_text or not hasattr(model, "transformer"):
        ft = copy.deepcopy(model)
    else:
        text = model.transformer
        del model.transformer
        try:
            ft = copy.deepcopy(model)
        finally:
            model.transformer = text
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ft.visual.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return ft


def canonical_visual(model: torch.nn.Module) -> dict[str, Tensor]:
    return {f"visual.{k}": v.detach().clone() for k, v in model.visual.state_dict().items()}


# --- formats ---------------------------------------------------------------------------------------------------

def write_open_clip_pt(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def write_open_clip_safetensors(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def write_task_vectors_pickle(model: torch.nn.Module, path: Path, *, legacy_names: bool = True,
                              copy_model: bool = True) -> Path:
    """A whole ``src.modeling.ImageEncoder`` pickled as the task_vectors code saves it: the text transformer
    deleted, torchvision transforms attached, and (``legacy_names``) the image tower under open_clip's old
    class name ``open_clip.model.VisualTransformer``."""
    clip = copy.deepcopy(model) if copy_model else model
    with shims.installed(legacy_open_clip=legacy_names) as mods:
        if legacy_names:
            clip.visual.__class__ = mods["open_clip.model.VisualTransformer"]
        encoder = shims.ImageEncoder(clip)
        encoder.train_preprocess = open_clip.image_transform(32, is_train=True)
        encoder.val_preprocess = open_clip.image_transform(32, is_train=False)
        torch.save(encoder, path)
    return path


def write_tall_masks_state_dict(model: torch.nn.Module, path: Path) -> Path:
    """``ImageEncoder.state_dict()`` as tall_masks saves it (``model.`` prefix, no text transformer, plus the
    ``model_name`` entry its code pops)."""
    state: dict[str, object] = {f"model.{k}": v for k, v in model.state_dict().items() if not k.startswith("transformer.")}
    state["model_name"] = "ViT-B-32"
    torch.save(state, path)
    return path


def to_hf_vision(visual_state: dict[str, Tensor], *, with_projection: bool, prefix: str = "") -> dict[str, Tensor]:
    """open_clip image tower (keys without ``visual.``) → transformers CLIPVisionModel names, q/k/v split."""
    out: dict[str, Tensor] = {}
    vm = prefix + "vision_model."
    out[vm + "embeddings.class_embedding"] = visual_state["class_embedding"]
    out[vm + "embeddings.patch_embedding.weight"] = visual_state["conv1.weight"]
    out[vm + "embeddings.position_embedding.weight"] = visual_state["positional_embedding"]
    n_pos = visual_state["positional_embedding"].shape[0]
    out[vm + "embeddings.position_ids"] = torch.arange(n_pos).unsqueeze(0)
    out[vm + "pre_layrnorm.weight"] = visual_state["ln_pre.weight"]
    out[vm + "pre_layrnorm.bias"] = visual_state["ln_pre.bias"]
    out[vm + "post_layernorm.weight"] = visual_state["ln_post.weight"]
    out[vm + "post_layernorm.bias"] = visual_state["ln_post.bias"]
    layers = sorted({int(k.split(".")[2]) for k in visual_state if k.startswith("transformer.resblocks.")})
    for i in layers:
        src = f"transformer.resblocks.{i}."
        dst = f"{vm}encoder.layers.{i}."
        w = visual_state[src + "attn.in_proj_weight"]
        b = visual_state[src + "attn.in_proj_bias"]
        d = w.shape[0] // 3
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[dst + f"self_attn.{name}.weight"] = w[j * d:(j + 1) * d].clone()
            out[dst + f"self_attn.{name}.bias"] = b[j * d:(j + 1) * d].clone()
        out[dst + "self_attn.out_proj.weight"] = visual_state[src + "attn.out_proj.weight"]
        out[dst + "self_attn.out_proj.bias"] = visual_state[src + "attn.out_proj.bias"]
        out[dst + "layer_norm1.weight"] = visual_state[src + "ln_1.weight"]
        out[dst + "layer_norm1.bias"] = visual_state[src + "ln_1.bias"]
        out[dst + "layer_norm2.weight"] = visual_state[src + "ln_2.weight"]
        out[dst + "layer_norm2.bias"] = visual_state[src + "ln_2.bias"]
        out[dst + "mlp.fc1.weight"] = visual_state[src + "mlp.c_fc.weight"]
        out[dst + "mlp.fc1.bias"] = visual_state[src + "mlp.c_fc.bias"]
        out[dst + "mlp.fc2.weight"] = visual_state[src + "mlp.c_proj.weight"]
        out[dst + "mlp.fc2.bias"] = visual_state[src + "mlp.c_proj.bias"]
    if with_projection:
        out[prefix + "visual_projection.weight"] = visual_state["proj"].t()
    return out


def write_hf_safetensors(model: torch.nn.Module, path: Path, *, with_projection: bool = False) -> Path:
    state = to_hf_vision({k: v.detach() for k, v in model.visual.state_dict().items()}, with_projection=with_projection)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def write_head_pickle(weight: Tensor, path: Path, *, tall_masks: bool = False) -> Path:
    """A pickled ClassificationHead (weight = normalised text embeddings × logit scale 100)."""
    cls = shims.TallMasksClassificationHead if tall_masks else shims.ClassificationHead
    with shims.installed():
        head = cls(normalize=True, weights=100.0 * torch.nn.functional.normalize(weight, dim=-1))
        torch.save(head, path)
    return path
