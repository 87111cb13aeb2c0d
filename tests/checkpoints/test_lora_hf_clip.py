"""LoRA adapters trained on a Hugging Face CLIP image tower (issue 25): PEFT's module paths (``vision_model.encoder.
layers.N.self_attn.q_proj`` …) read against a base canonicalised to open_clip keys, q/k/v fused into one low-rank
update of ``attn.in_proj_weight``, equal to PEFT's own merge_and_unload canonicalised the same way."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from spectral.checkpoints.formats import load_checkpoint
from spectral.checkpoints.keymap import canonicalize
from spectral.checkpoints.lora import (
    AdapterKeyError,
    AdapterShapeError,
    LoRAImagePool,
    LoRAState,
    make_lora_pool,
    read_adapter,
)
from spectral.lora import factor_svd
from spectral.pool import ImagePool
from spectral.taskset import TaskSet

torch.set_num_threads(1)

D, LAYERS = 32, 2


def _vision_model(seed: int = 0) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=4, image_size=32,
                           patch_size=8, intermediate_size=48)
    return CLIPVisionModel(cfg).eval()


def _canonical(state: dict[str, Tensor]) -> dict[str, Tensor]:
    visual = canonicalize(state, "test").visual
    return {k: visual[k].detach().clone() for k in visual}


def _write_adapter(base_state: dict[str, Tensor], folder: Path, *, r: int, alpha: float, targets: list[str],
                   seed: int, **extra: Any) -> dict[str, Tensor]:
    """A PEFT LoRA folder on a CLIPVisionModel with random (non-zero) factors; returns PEFT's merge_and_unload state."""
    from peft import LoraConfig, get_peft_model

    model = _vision_model()
    model.load_state_dict(base_state)
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                                  **extra))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    peft_model.save_pretrained(folder)
    return {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lora-hf-clip")
    base_state = {k: v.detach().clone() for k, v in _vision_model().state_dict().items()}
    save_file({k: v.contiguous() for k, v in base_state.items()}, str(root / "base.safetensors"))
    merged = {
        "a": _write_adapter(base_state, root / "a", r=4, alpha=8, targets=["q_proj", "v_proj", "fc1", "out_proj"],
                            seed=1),
        # mixed: another rank, rsLoRA, k alone in layer 0 and q/k/v in layer 1 (rank_pattern), fc2
        "b": _write_adapter(base_state, root / "b", r=6, alpha=4, seed=2, use_rslora=True,
                            targets=["k_proj", "q_proj", "v_proj", "fc2"],
                            rank_pattern={"layers.0.self_attn.q_proj": 2}),
    }
    return {"root": root, "base_state": base_state, "merged": merged}


def _expected_deltas(hf_clip: dict[str, Any], task: str) -> dict[str, Tensor]:
    base = _canonical(hf_clip["base_state"])
    merged = _canonical(hf_clip["merged"][task])
    assert set(base) == set(merged)
    return {k: merged[k].double() - base[k].double() for k in base}


def test_base_file_in_hf_layout_reads_as_canonical_keys(hf_clip) -> None:
    loaded = load_checkpoint(hf_clip["root"] / "base.safetensors")
    assert loaded.format == "hf"
    assert loaded.visual.shape("visual.transformer.resblocks.0.attn.in_proj_weight") == (3 * D, D)  # type: ignore[attr-defined]


def test_adapter_deltas_equal_peft_merge_canonicalised(hf_clip) -> None:
    base = load_checkpoint(hf_clip["root"] / "base.safetensors").visual
    adapter = read_adapter(hf_clip["root"] / "a", base)
    in_proj = [f"visual.transformer.resblocks.{i}.attn.in_proj_weight" for i in range(LAYERS)]
    adapted = {f"visual.transformer.resblocks.{i}.{m}.weight" for i in range(LAYERS)
               for m in ("attn.out_proj", "mlp.c_fc")} | {k for k in in_proj}
    assert set(adapter.keys()) == adapted
    assert adapter.skipped == []
    state = LoRAState(base, adapter)
    expected = _expected_deltas(hf_clip, "a")
    nonzero = {k for k, v in expected.items() if float(v.abs().max()) > 0}
    assert nonzero == adapted  # PEFT's merge changes exactly the keys spectral says the adapter updates
    for key, ref in expected.items():
        low = state.low_rank_delta(key)
        ours = low.dense().double() if low is not None else state[key].double() - base[key].double()
        scale = max(1.0, float(ref.abs().max()))
        assert torch.allclose(ours, ref, atol=2e-6 * scale, rtol=0), key
        assert torch.allclose(state[key].double(), base[key].double() + ref, atol=2e-6 * scale), key
    for key in in_proj:  # one fused update of rank r_q + r_v, its k rows zero
        low = state.low_rank_delta(key)
        assert low is not None and low.rank == 8 and low.shape == (3 * D, D)
        dense = low.dense()
        assert float(dense[D:2 * D].abs().max()) == 0.0
        assert float(dense[:D].abs().max()) > 0 and float(dense[2 * D:].abs().max()) > 0
        # the factor SVD of the fused update is the dense SVD
        U, S, V = factor_svd(low.B, low.A, low.scale)
        ref = expected[key]
        svals = torch.linalg.svdvals(ref)[: S.shape[0]]
        assert torch.allclose(S.double(), svals, atol=1e-5 * float(svals[0]), rtol=0)
        assert torch.allclose((U.double() * S.double()) @ V.double().T, ref, atol=1e-5 * float(svals[0]))


class _HFClipBasePool(ImagePool):
    """The smallest image pool over an HF CLIP base file: only the bodies (no heads, data or tower)."""

    family = "clip"

    def __init__(self, base_file: Path, tasks: list[str]) -> None:
        self.name, self.architecture, self.task_names = "hf-clip-test", "hf-clip-tiny", tasks
        self._base = load_checkpoint(base_file).visual

    def base_state_dict(self) -> Any:
        return self._base

    def finetuned_state_dict(self, task: str) -> Any:
        return self._base

    def head(self, task: str) -> Tensor:
        raise NotImplementedError

    def dataset(self, task: str, split: Any) -> Any:
        raise NotImplementedError

    def build_image_encoder(self) -> Any:
        raise NotImplementedError


def test_mixed_adapters_through_a_lora_image_pool(hf_clip) -> None:
    root = hf_clip["root"]
    pool = make_lora_pool(_HFClipBasePool(root / "base.safetensors", ["a", "b"]), {"a": root / "a", "b": root / "b"})
    assert isinstance(pool, LoRAImagePool)
    ts = TaskSet.from_pool(pool)
    assert ts.low_rank_tasks == [0, 1]
    k0 = "visual.transformer.resblocks.0.attn.in_proj_weight"
    k1 = "visual.transformer.resblocks.1.attn.in_proj_weight"
    # transformers ≥ 5 builds CLIPVisionModel without the vision_model level: PEFT's paths are encoder.layers.N…
    assert pool.adapter("b").modules.keys() >= {"encoder.layers.0.self_attn.{q,k,v}_proj"}
    assert ts.task_low_rank("b", k0).rank == 2 + 6 + 6 and ts.task_low_rank("b", k1).rank == 18
    for task in ("a", "b"):
        expected = _expected_deltas(hf_clip, task)
        for key in ts.keys:
            ref = expected[key]
            ours = ts.task_matrix(task, key).double()
            assert torch.allclose(ours, ref, atol=2e-6 * max(1.0, float(ref.abs().max())), rtol=0), (task, key)
            low = ts.task_low_rank(task, key)
            if low is not None and low.rank:
                _, S, _ = low.svd()
                svals = torch.linalg.svdvals(ref)[: S.shape[0]]
                assert torch.allclose(S.double(), svals, atol=1e-5 * float(svals[0]), rtol=0), (task, key)
    # a key only b adapts: a's update is rank 0; c_proj (fc2) only b
    assert ts.task_low_rank("a", "visual.transformer.resblocks.0.mlp.c_proj.weight").rank == 0
    assert ts.task_low_rank("b", "visual.transformer.resblocks.0.mlp.c_fc.weight").rank == 0


def _copy(src: Path, dst: Path, *, tensors=None, config=None) -> Path:
    dst.mkdir(parents=True)
    w = load_file(str(src / "adapter_model.safetensors"))
    save_file(tensors(w) if tensors else w, str(dst / "adapter_model.safetensors"))
    cfg = json.loads((src / "adapter_config.json").read_text())
    (dst / "adapter_config.json").write_text(json.dumps(config(cfg) if config else cfg))
    return dst


def test_clip_model_prefix_text_tower_and_named_errors(hf_clip, tmp_path) -> None:
    root = hf_clip["root"]
    base = load_checkpoint(root / "base.safetensors").visual
    ref = read_adapter(root / "a", base)

    # a CLIPModel adapter: the same factors under CLIPModel's paths (vision_model.…), plus a text-tower module
    # (skipped)
    def as_clip_model(w):
        out = {k.replace("base_model.model.", "base_model.model.vision_model."): v for k, v in w.items()}
        out["base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = torch.ones(4, D)
        out["base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight"] = torch.ones(D, 4)
        return out

    clip_model = read_adapter(_copy(root / "a", tmp_path / "clip", tensors=as_clip_model), base)
    assert clip_model.skipped == ["text_model.encoder.layers.0.self_attn.q_proj"]
    assert clip_model.keys() == ref.keys()
    assert all(m.startswith("vision_model.encoder.layers.") for m in clip_model.modules)
    for m in ref.modules:
        assert torch.equal(clip_model.delta("vision_model." + m).dense(), ref.delta(m).dense())

    # a q block of the wrong width names the module, the fused key and the shapes
    def widen(w):
        k = "base_model.model.encoder.layers.1.self_attn.q_proj.lora_B.weight"
        return {**w, k: torch.zeros(D + 2, 4)}

    with pytest.raises(AdapterShapeError, match=r"layers\.1\.self_attn\.q_proj.*in_proj_weight.*\(34, 4\)"):
        read_adapter(_copy(root / "a", tmp_path / "wide", tensors=widen), base)

    # a layer the base does not have
    def extra_layer(w):
        out = dict(w)
        for kind, shape in (("lora_A", (4, D)), ("lora_B", (48, 4))):
            out[f"base_model.model.encoder.layers.7.mlp.fc1.{kind}.weight"] = torch.zeros(shape)
        return out

    with pytest.raises(AdapterKeyError, match=r"layers\.7\.mlp\.fc1.*resblocks\.7\.mlp\.c_fc\.weight"):
        read_adapter(_copy(root / "a", tmp_path / "layer7", tensors=extra_layer), base)

    # text-tower modules only: nothing of the image tower to merge
    def text_only(w):
        return {k.replace("base_model.model.", "base_model.model.text_model."): v for k, v in w.items()}

    with pytest.raises(AdapterKeyError, match="no module of the CLIP image tower"):
        read_adapter(_copy(root / "a", tmp_path / "text", tensors=text_only), base)


def _clip_model(seed: int = 0) -> Any:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    vision = {"hidden_size": D, "num_hidden_layers": 1, "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
              "intermediate_size": 48}
    text = {"hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 40,
            "vocab_size": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    cfg = CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)
    return CLIPModel(cfg).eval()


@pytest.mark.parametrize("targets", [["visual_projection", "q_proj", "k_proj"], ["position_embedding", "fc2"]])
def test_peft_on_a_clip_model_and_embeddings(tmp_path, targets) -> None:
    """A real PEFT adapter on a whole CLIPModel: vision paths under ``vision_model.``, the visual projection
    (transposed into open_clip's visual.proj), the text tower's q/k skipped, and an nn.Embedding (the position
    embedding, lora_embedding_A/B); every canonical key equals PEFT's merge canonicalised."""
    from peft import LoraConfig, get_peft_model

    model = _clip_model()
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_file({k: v.contiguous() for k, v in base_state.items()}, str(tmp_path / "base.safetensors"))
    peft_model = get_peft_model(model, LoraConfig(r=3, lora_alpha=5, target_modules=targets, lora_dropout=0.0))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = _canonical({k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()})
    loaded = load_checkpoint(tmp_path / "base.safetensors")
    base = loaded.visual
    assert "visual.proj" in base
    adapter = read_adapter(tmp_path / "adapter", base)
    # every target name is also a module of the text tower: those are skipped
    assert adapter.skipped and all(m.startswith("text_model.") for m in adapter.skipped)
    state = LoRAState(base, adapter)
    changed = set()
    for key in base:
        ref = merged[key].double() - base[key].double()
        if float(ref.abs().max()) > 0:
            changed.add(key)
        assert torch.allclose(state[key].double() - base[key].double(), ref,
                              atol=2e-6 * max(1.0, float(ref.abs().max())), rtol=0), key
    assert changed == set(adapter.keys())
    if "q_proj" in targets:
        assert changed == {"visual.proj", "visual.transformer.resblocks.0.attn.in_proj_weight"}
        assert adapter.modules["vision_model.encoder.layers.0.self_attn.{q,k}_proj"].key.endswith("in_proj_weight")
    else:
        assert changed == {"visual.positional_embedding", "visual.transformer.resblocks.0.mlp.c_proj.weight"}
