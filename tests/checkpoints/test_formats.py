"""Every checkpoint format loads to the same canonical tensors; bad files give named errors."""
from __future__ import annotations

import os
import pickle
import struct

import ckpt_writers as W
import pytest
import torch
from safetensors.torch import save_file

from spectral.checkpoints import (
    TruncatedCheckpointError,
    UnsafePickleError,
    UnsupportedArchitectureError,
    detect_architecture,
    load_checkpoint,
    load_head,
)
from spectral.checkpoints.keymap import canonicalize
from spectral.checkpoints.safe_pickle import resolve_global
from spectral.checkpoints.shims import LegacyModule, Placeholder
from spectral.errors import CheckpointError, MissingKeyError, ShapeMismatchError, UntrustedPickleError


@pytest.fixture
def ft(tiny_models):
    return tiny_models[1]["MNIST"]


def _write_all(model, tmp_path):
    return {
        "open_clip_pt": (W.write_open_clip_pt(model, tmp_path / "oc.pt"), "open_clip"),
        "open_clip_safetensors": (W.write_open_clip_safetensors(model, tmp_path / "oc.safetensors"), "open_clip"),
        "task_vectors_pickle": (W.write_task_vectors_pickle(model, tmp_path / "finetuned.pt"), "pickle"),
        "task_vectors_pickle_new_names": (
            W.write_task_vectors_pickle(model, tmp_path / "finetuned_new.pt", legacy_names=False), "pickle"),
        "tall_masks": (W.write_tall_masks_state_dict(model, tmp_path / "nonlinear_finetuned.pt"), "state_dict"),
        "hf_with_projection": (W.write_hf_safetensors(model, tmp_path / "hf_proj.safetensors", with_projection=True), "hf"),
        "hf_vision_model": (W.write_hf_safetensors(model, tmp_path / "model.safetensors"), "hf"),
    }


def test_every_format_loads_to_the_same_canonical_tensors(ft, tmp_path):
    reference = W.canonical_visual(ft)
    for label, (path, fmt) in _write_all(ft, tmp_path).items():
        loaded = load_checkpoint(path, trust_pickle=True)
        assert loaded.format == fmt, label
        expected_keys = set(reference) - ({"visual.proj"} if label == "hf_vision_model" else set())
        assert set(loaded.visual) == expected_keys, label
        for key in expected_keys:
            torch.testing.assert_close(loaded.visual[key], reference[key], rtol=0, atol=0, msg=f"{label}: {key}")
        assert detect_architecture(loaded.visual if label != "hf_vision_model" else {**dict(loaded.visual), "visual.proj": reference["visual.proj"]}) == W.TINY


def test_hf_folder_and_prefixed_clipmodel_names(ft, tmp_path):
    folder = tmp_path / "clip-vit-tiny_mnist"
    folder.mkdir()
    W.write_hf_safetensors(ft, folder / "model.safetensors", with_projection=True)
    assert load_checkpoint(folder).format == "hf"  # a HF model folder resolves to its weight file
    bin_folder = tmp_path / "clip-vit-tiny_bin"
    bin_folder.mkdir()
    hf_state = W.to_hf_vision({k: v for k, v in ft.visual.state_dict().items()}, with_projection=True)
    torch.save(hf_state, bin_folder / "pytorch_model.bin")  # transformers' older weight file: a plain state dict
    from_bin = load_checkpoint(bin_folder)
    assert from_bin.format == "hf" and torch.equal(from_bin.visual["visual.proj"], ft.visual.proj.detach())
    state = W.to_hf_vision({k: v for k, v in ft.visual.state_dict().items()}, with_projection=True, prefix="clip.")
    weights = canonicalize(state, "in-memory")
    torch.testing.assert_close(weights.visual["visual.transformer.resblocks.1.attn.in_proj_weight"],
                               ft.visual.transformer.resblocks[1].attn.in_proj_weight.detach())


def test_text_tower_is_kept_apart_from_the_image_tower(tiny_models, tmp_path):
    base = tiny_models[0]
    loaded = load_checkpoint(W.write_open_clip_pt(base, tmp_path / "zs.pt"))
    assert all(k.startswith("visual.") for k in loaded.visual)
    assert "token_embedding.weight" in loaded.text and any(k.startswith("transformer.") for k in loaded.text)
    tall = load_checkpoint(W.write_tall_masks_state_dict(base, tmp_path / "nonlinear_zeroshot.pt"))
    assert tall.layout == "prefixed:model." and not any(k.startswith("transformer.") for k in tall.text or {})


def test_untrusted_pickle_is_refused_with_how_to_allow_it(ft, tmp_path):
    path = W.write_task_vectors_pickle(ft, tmp_path / "finetuned.pt")
    with pytest.raises(UntrustedPickleError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "src.modeling.ImageEncoder" in message
    assert "--trust-pickle" in message and "Trust pickled checkpoints" in message and "trust_pickle=True" in message
    assert isinstance(err.value, CheckpointError)


def test_trusted_pickle_still_cannot_call_arbitrary_globals(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "payload": Evil()}, path)
    with pytest.raises(UntrustedPickleError):
        load_checkpoint(path)
    with pytest.raises(UnsafePickleError, match=r"evil\.pt.*(posix|os)\.makedirs"):
        load_checkpoint(path, trust_pickle=True)
    assert not marker.exists()


def test_restricted_unpickler_maps_legacy_names_to_shims():
    assert issubclass(resolve_global("open_clip.model", "VisualTransformer"), LegacyModule)
    assert issubclass(resolve_global("torchvision.transforms.transforms", "Compose"), Placeholder)
    assert resolve_global("src.modeling", "ImageEncoder").__name__ == "ImageEncoder"
    assert resolve_global("torch.nn.modules.linear", "Linear") is torch.nn.Linear
    for module, name in [("os", "system"), ("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"),
                         ("torch", "load")]:
        with pytest.raises(UnsafePickleError):
            resolve_global(module, name)


def test_truncated_files_give_a_named_error(ft, tmp_path):
    zipped = W.write_open_clip_pt(ft, tmp_path / "zip.pt")
    legacy = tmp_path / "legacy.pt"
    torch.save(ft.state_dict(), legacy, _use_new_zipfile_serialization=False)
    st = W.write_open_clip_safetensors(ft, tmp_path / "w.safetensors")
    pickled = W.write_task_vectors_pickle(ft, tmp_path / "pickled.pt")
    for path in (zipped, legacy, st, pickled):
        data = path.read_bytes()
        cut = tmp_path / f"cut_{path.name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(TruncatedCheckpointError, match="truncated"):
            load_checkpoint(cut, trust_pickle=True)
    # a safetensors header that promises more than the file holds
    bad = tmp_path / "header.safetensors"
    bad.write_bytes(struct.pack("<Q", 10_000) + b'{"a": 1}')
    with pytest.raises(TruncatedCheckpointError):
        load_checkpoint(bad)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedCheckpointError):
        load_checkpoint(empty)


def test_files_that_are_not_models(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(3, 3)}, str(other))
    with pytest.raises(CheckpointError, match="no CLIP image tower"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_hf_missing_projection_part_is_a_named_error(ft, tmp_path):
    state = W.to_hf_vision({k: v for k, v in ft.visual.state_dict().items()}, with_projection=False)
    del state["vision_model.encoder.layers.1.self_attn.k_proj.weight"]
    with pytest.raises(MissingKeyError, match=r"layers\.1\.self_attn\.k_proj\.weight"):
        canonicalize(state, "hf.safetensors")
    state = W.to_hf_vision({k: v for k, v in ft.visual.state_dict().items()}, with_projection=False)
    state["vision_model.encoder.layers.0.self_attn.v_proj.weight"] = torch.zeros(5, 32)
    with pytest.raises(ShapeMismatchError, match="layer 0"):
        canonicalize(state, "hf.safetensors")


def test_architecture_detection_on_real_shapes(vit_b32_visual):
    assert detect_architecture(vit_b32_visual) == "ViT-B-32"
    import open_clip

    for name in ("ViT-B-16", "ViT-L-14"):
        with torch.device("meta"):  # shapes only, no memory, no download
            model = open_clip.create_model(name, pretrained=None, device="meta")
        state = {f"visual.{k}": v for k, v in model.visual.state_dict().items()}
        assert detect_architecture(state) == name
    odd = dict(vit_b32_visual)
    odd["visual.proj"] = torch.zeros(768, 100)
    with pytest.raises(UnsupportedArchitectureError, match="output dim 100"):
        detect_architecture(odd)


def test_hf_mapping_on_vit_b32_shapes(vit_b32_visual):
    visual = {k[len("visual."):]: v for k, v in vit_b32_visual.items()}
    weights = canonicalize(W.to_hf_vision(visual, with_projection=True), "clip-vit-base-patch32")
    assert set(weights.visual) == set(vit_b32_visual)
    assert detect_architecture(weights.visual) == "ViT-B-32"
    key = "visual.transformer.resblocks.11.attn.in_proj_weight"
    assert torch.equal(weights.visual[key], vit_b32_visual[key])
    assert torch.equal(weights.visual["visual.proj"], vit_b32_visual["visual.proj"])


# --- heads ------------------------------------------------------------------------------------------------------

def test_head_files(tmp_path):
    weight = torch.randn(5, 16)
    expected = torch.nn.functional.normalize(weight, dim=-1)
    tv = W.write_head_pickle(weight, tmp_path / "head_MNIST.pt")
    tm = W.write_head_pickle(weight, tmp_path / "head_MNISTVal.pt", tall_masks=True)
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        load_head(tv)
    for path in (tv, tm):
        torch.testing.assert_close(load_head(path, trust_pickle=True, embed_dim=16), expected)
    torch.save({"weight": weight * 3, "bias": torch.zeros(5)}, tmp_path / "sd.pt")
    torch.testing.assert_close(load_head(tmp_path / "sd.pt"), expected)
    save_file({"head": weight}, str(tmp_path / "h.safetensors"))
    torch.testing.assert_close(load_head(tmp_path / "h.safetensors"), expected)
    torch.save(weight, tmp_path / "t.pt")
    torch.testing.assert_close(load_head(tmp_path / "t.pt"), expected)
    torch.save({"weight": weight, "bias": torch.ones(5)}, tmp_path / "biased.pt")
    with pytest.raises(CheckpointError, match="bias"):
        load_head(tmp_path / "biased.pt")
    with pytest.raises(CheckpointError, match=r"\(5, 16\).*32"):
        load_head(tmp_path / "t.pt", embed_dim=32)


def test_a_model_file_is_not_a_head_and_a_head_is_not_a_model(ft, tmp_path):
    head = W.write_head_pickle(torch.randn(3, 16), tmp_path / "head.pt")
    with pytest.raises(CheckpointError, match="classification head"):
        load_checkpoint(head, trust_pickle=True)


@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")
def test_pickle_protocols_and_legacy_serialisation(ft, tmp_path):
    """The task_vectors files predate torch's zip format: the legacy format loads through the same shims."""
    clip = W.finetune(ft, 9)
    from spectral.checkpoints import shims

    path = tmp_path / "legacy_pickle.pt"
    with shims.installed(legacy_open_clip=True) as mods:
        clip.visual.__class__ = mods["open_clip.model.VisualTransformer"]
        torch.save(shims.ImageEncoder(clip), path, _use_new_zipfile_serialization=False, pickle_protocol=2)
    loaded = load_checkpoint(path, trust_pickle=True)
    assert loaded.format == "pickle"
    ref = W.canonical_visual(clip)
    assert all(torch.equal(loaded.visual[k], ref[k]) for k in ref)
    assert pickle.HIGHEST_PROTOCOL >= 2


def test_streamed_safetensors_equal_what_safetensors_reads(tmp_path) -> None:  # noqa: ANN001
    """write_safetensors_stream writes one tensor at a time; safetensors' own reader gets every tensor, dtype,
    shape and the metadata back, including 0-d, empty, bf16 and bool tensors."""
    from safetensors import safe_open

    from spectral.checkpoints.formats import write_safetensors_stream

    g = torch.Generator().manual_seed(0)
    tensors = {
        "b.weight": torch.randn(7, 5, generator=g).to(torch.bfloat16),
        "a.bias": torch.randn(3, generator=g),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "mask": torch.tensor([True, False, True]),
        "ids": torch.arange(5, dtype=torch.int64),
        "half": torch.randn(2, 3, generator=g).half(),
    }
    produced: list[str] = []

    def tensor_of(key: str) -> torch.Tensor:
        produced.append(key)
        return tensors[key]

    layout = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    path = tmp_path / "x.safetensors"
    write_safetensors_stream(path, layout, tensor_of, {"method": "tsv_m"})
    assert produced == list(tensors)  # each computed once, in the header's order
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"method": "tsv_m"}
        assert set(f.keys()) == set(tensors)
        for k, v in tensors.items():
            got = f.get_tensor(k)
            assert got.dtype == v.dtype and got.shape == v.shape and torch.equal(got, v)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert header_len % 8 == 0  # padded as safetensors pads it
    assert path.stat().st_size == 8 + header_len + sum(v.numel() * v.element_size() for v in tensors.values())


def test_streamed_safetensors_refuse_a_tensor_unlike_the_header(tmp_path) -> None:  # noqa: ANN001
    from spectral.checkpoints.errors import CheckpointError
    from spectral.checkpoints.formats import write_safetensors_stream

    layout = {"w": (torch.float32, (2, 3))}
    with pytest.raises(CheckpointError, match=r"'w' is torch.float32 \(3, 2\), its header says torch.float32 \(2, 3\)"):
        write_safetensors_stream(tmp_path / "x.safetensors", layout, lambda k: torch.zeros(3, 2))
    with pytest.raises(CheckpointError, match="'w' is torch.bfloat16"):
        write_safetensors_stream(tmp_path / "y.safetensors", layout, lambda k: torch.zeros(2, 3, dtype=torch.bfloat16))
