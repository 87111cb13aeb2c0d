"""Hugging Face model folders: read lazily and memory-mapped, aligned to one canonical body, written back.

A model folder is ``config.json`` plus its weights: ``model.safetensors``, sharded ``model-0000k-of-0000n.safetensors``
with ``model.safetensors.index.json``, or ``pytorch_model.bin`` (optionally sharded with
``pytorch_model.bin.index.json``; read by ``torch.load(weights_only=True, mmap=True)``, which refuses any pickled
code). Safetensors files are memory-mapped by :func:`spectral.checkpoints.formats.read_safetensors` (the project's
validating reader: truncated and corrupt files get named errors), so nothing is read before it is used.

Canonical form (the "body" every view and method sees):

* **Keys** are the bare base model's own keys: the architecture's ``base_model_prefix`` (gpt2 ``transformer``,
  roberta ``roberta``, bert ``bert``, llama/qwen2/mistral ``model``) is stripped where present, so a bare
  ``GPT2Model`` (``h.0.attn.c_attn.weight``) and a ``GPT2ForSequenceClassification``
  (``transformer.h.0.attn.c_attn.weight``) line up. Keys outside the prefix that are not task heads (Llama's
  ``lm_head.weight``) keep their name.
* **Task heads** (gpt2/llama-family ``score.*``, roberta/bert ``classifier.*``, bert ``cls.*``) are never body
  keys: they belong to their task (:meth:`HFFolder.head`).
* **Orientation**: every 2-D weight is out × in. GPT-2's ``Conv1D`` weights (``attn.c_attn``, ``attn.c_proj``,
  ``mlp.c_fc``, ``mlp.c_proj``) are stored in × out: they are transposed when read and transposed back when written.
* **Buffers** stored by older checkpoints (GPT-2's ``attn.bias`` / ``attn.masked_bias``, Llama's
  ``rotary_emb.inv_freq``) are never merged: the base's copy is written out as it is.

Which body weights are merged as matrices (:func:`matrix_filter`):

* ``default``: every 2-D body weight (attention, MLP, token/position embeddings, a body ``lm_head``). This is
  FusionBench's rule: its TSV-M (``fusion_bench/method/task_singular_vector/utils/TSVM_utils.py``,
  ``compute_and_sum_svd_mem_reduction``) decomposes every tensor with ``len(shape) == 2 and key not in
  exclude_keys`` (``exclude_keys`` empty by default) and averages the rest; for GPT-2 that is ``wte``, ``wpe`` and
  the four Conv1D weights of each block, which it decomposes in their stored in × out orientation (singular values
  and TSV-M/Iso merges do not depend on the orientation: the merge of the transposes is the transpose of the merge),
  and for RoBERTa ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings`` and every Linear weight
  of the encoder. Task heads are not in the body, so never merged.
* ``attn_mlp``: only the attention and MLP projection weights (what AdaRank's code masks).

Everything else (LayerNorm, biases) is merged as a vector, as for CLIP.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from spectral.checkpoints.errors import ArchitectureMismatchError, CheckpointError, PoolConfigError
from spectral.checkpoints.keymap import LazyStateDict

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_MAX_SHARD_BYTES",
    "HFArchitecture",
    "HFFolder",
    "MATRIX_RULES",
    "MissingConfigError",
    "MissingHeadError",
    "is_hf_folder",
    "is_language_folder",
    "matrix_filter",
    "read_hf_folder",
    "write_hf_folder",
]

#: shard size above which the writer splits safetensors files (the hub's convention, 5 GB)
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_SINGLE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
_WEIGHT_FILE = re.compile(r"(\.safetensors|\.bin|\.safetensors\.index\.json|\.bin\.index\.json|\.h5|\.msgpack|"
                          r"\.ckpt|\.pt|\.pth)$")


class MissingConfigError(PoolConfigError):
    """A folder given as a Hugging Face model has no ``config.json`` (or no weights, or an unreadable config)."""


class MissingHeadError(CheckpointError):
    """A fine-tuned model folder has no task head (``score.*`` / ``classifier.*``): it is not a task model."""


@dataclass(frozen=True)
class HFArchitecture:
    """How one ``model_type`` stores its weights (see the module docstring)."""

    model_type: str
    base_model_prefix: str
    #: regexes on stored keys: the task heads
    head_patterns: tuple[str, ...]
    #: regexes on canonical keys: weights stored in × out (GPT-2 Conv1D), transposed to out × in when read
    transposed_patterns: tuple[str, ...] = ()
    #: regexes on canonical keys: buffers some checkpoints store; never merged, the base's copy is kept
    buffer_patterns: tuple[str, ...] = ()
    #: regex on canonical keys: the attention and MLP projection weights (the ``attn_mlp`` rule)
    attn_mlp_pattern: str = r"$^"

    def is_head(self, stored_key: str) -> bool:
        return any(re.search(p, stored_key) for p in self.head_patterns)

    def canonical(self, stored_key: str) -> str:
        prefix = self.base_model_prefix + "."
        return stored_key[len(prefix):] if stored_key.startswith(prefix) else stored_key

    def is_transposed(self, canonical_key: str) -> bool:
        return any(re.search(p, canonical_key) for p in self.transposed_patterns)

    def is_buffer(self, canonical_key: str) -> bool:
        return any(re.search(p, canonical_key) for p in self.buffer_patterns)


_LLAMA_ATTN_MLP = r"\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))\.weight$"
_BERT_ATTN_MLP = (r"\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|"
                  r"layer\.\d+\.output\.dense)\.weight$")


def _llama_like(model_type: str) -> HFArchitecture:
    return HFArchitecture(model_type, "model", (r"^score\.",), (), (r"rotary_emb\.inv_freq$",), _LLAMA_ATTN_MLP)


ARCHITECTURES: dict[str, HFArchitecture] = {
    "gpt2": HFArchitecture(
        "gpt2", "transformer", (r"^score\.",),
        transposed_patterns=(r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj|crossattention\.c_attn|"
                             r"crossattention\.q_attn|crossattention\.c_proj)\.weight$",),
        buffer_patterns=(r"\.attn\.(bias|masked_bias)$", r"\.crossattention\.(bias|masked_bias)$"),
        attn_mlp_pattern=r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$",
    ),
    "roberta": HFArchitecture("roberta", "roberta", (r"^classifier\.",), (), (r"position_ids$",), _BERT_ATTN_MLP),
    "bert": HFArchitecture("bert", "bert", (r"^classifier\.", r"^cls\."), (), (r"position_ids$",), _BERT_ATTN_MLP),
    "llama": _llama_like("llama"),
    "qwen2": _llama_like("qwen2"),
    "mistral": _llama_like("mistral"),
}

MATRIX_RULES = ("default", "attn_mlp")


def architecture_of(model_type: str, source: str | Path) -> HFArchitecture:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise CheckpointError(
            f"{source}: model_type {model_type!r} is not supported (supported: {', '.join(sorted(ARCHITECTURES))})"
        ) from None


def matrix_filter(architecture: str, rule: str = "default") -> Callable[[str, Tensor], bool]:
    """The filter ``(canonical key, tensor) -> merged as a matrix?`` of a rule (module docstring)."""
    arch = architecture_of(architecture, "matrix rule")
    if rule == "default":
        return lambda key, tensor: tensor.ndim == 2
    if rule == "attn_mlp":
        pattern = re.compile(arch.attn_mlp_pattern)
        return lambda key, tensor: tensor.ndim == 2 and bool(pattern.search(key))
    raise PoolConfigError(f"unknown matrix rule {rule!r} (rules: {', '.join(MATRIX_RULES)})")


def is_hf_folder(path: str | os.PathLike[str]) -> bool:
    """A folder holding ``config.json``: a Hugging Face model folder."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file()


def is_language_folder(path: str | os.PathLike[str]) -> bool:
    """A Hugging Face model folder of a language model (any model_type but CLIP's, which the image loaders read)."""
    if not is_hf_folder(path):
        return False
    try:
        model_type = json.loads((Path(path) / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError, AttributeError):
        return True  # let the reader name the problem
    return not str(model_type).startswith("clip")


# --- reading -----------------------------------------------------------------------------------------------------

def _read_bin(path: Path) -> dict[str, Tensor]:
    """``torch.load(weights_only=True)``: tensors only, no pickled code; memory-mapped for zip archives."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - reported with the file and the reason
        raise CheckpointError(
            f"{path}: cannot read it as a tensors-only torch file (torch.load weights_only=True): {exc}"
        ) from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return dict(obj)


def _read_index(path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid shard index (needs a 'weight_map'): {exc}") from None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{path}: 'weight_map' is not a mapping")
    return {str(k): str(v) for k, v in weight_map.items()}


def _read_weights(folder: Path) -> tuple[dict[str, Tensor], list[Path], str]:
    """Stored tensors (lazy), the files they come from, and the format."""
    from spectral.checkpoints.formats import read_safetensors

    def sharded(index: Path, reader: Callable[[Path], dict[str, Tensor]]) -> tuple[dict[str, Tensor], list[Path]]:
        weight_map = _read_index(index)
        files = sorted(set(weight_map.values()))
        tensors: dict[str, Tensor] = {}
        for name in files:
            shard = folder / name
            if not shard.is_file():
                raise CheckpointError(f"{index} names shard {name}, which is not in {folder}")
            tensors.update(reader(shard))
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CheckpointError(f"{index}: {len(missing)} tensor(s) listed but in no shard, e.g. {missing[:3]}")
        return tensors, [folder / n for n in files]

    if (folder / SAFE_SINGLE).is_file():
        return read_safetensors(folder / SAFE_SINGLE), [folder / SAFE_SINGLE], "safetensors"
    if (folder / SAFE_INDEX).is_file():
        tensors, files = sharded(folder / SAFE_INDEX, read_safetensors)
        return tensors, files, "safetensors-sharded"
    if (folder / BIN_SINGLE).is_file():
        return _read_bin(folder / BIN_SINGLE), [folder / BIN_SINGLE], "bin"
    if (folder / BIN_INDEX).is_file():
        tensors, files = sharded(folder / BIN_INDEX, _read_bin)
        return tensors, files, "bin-sharded"
    raise MissingConfigError(
        f"{folder}: a Hugging Face model folder without weights (looked for {SAFE_SINGLE}, {SAFE_INDEX}, "
        f"{BIN_SINGLE}, {BIN_INDEX})"
    )


class HFFolder:
    """One Hugging Face model folder, read lazily: its config, architecture, canonical body and task head."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.expanduser(str(path)))
        if not self.path.is_dir():
            raise MissingConfigError(f"{self.path}: not a folder (a Hugging Face model is a folder with config.json)")
        config_file = self.path / "config.json"
        if not config_file.is_file():
            raise MissingConfigError(
                f"{self.path}: no config.json, so it is not a Hugging Face model folder (save models with "
                "save_pretrained, or copy the config.json of the model they were trained from)"
            )
        try:
            self.config: dict[str, Any] = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise MissingConfigError(f"{config_file}: not valid JSON ({exc})") from None
        model_type = self.config.get("model_type")
        if not isinstance(model_type, str):
            raise MissingConfigError(f"{config_file}: has no 'model_type'")
        self.model_type = model_type
        self.arch = architecture_of(model_type, config_file)
        self.architectures: list[str] = list(self.config.get("architectures") or [])
        self._stored: dict[str, Tensor] | None = None
        self._body_keys: dict[str, str] | None = None
        self._files: list[Path] = []
        self._format = ""

    def __repr__(self) -> str:
        return f"HFFolder({str(self.path)!r}, {self.model_type})"

    @property
    def stored(self) -> dict[str, Tensor]:
        """Every stored tensor under its stored name (memory-mapped views; nothing read until used)."""
        if self._stored is None:
            self._stored, self._files, self._format = _read_weights(self.path)
        return self._stored

    @property
    def files(self) -> list[Path]:
        """The weight files (after reading their headers)."""
        self.stored  # noqa: B018
        return self._files

    @property
    def format(self) -> str:
        """``safetensors``, ``safetensors-sharded``, ``bin`` or ``bin-sharded``."""
        self.stored  # noqa: B018
        return self._format

    @property
    def vocab_size(self) -> int | None:
        value = self.config.get("vocab_size")
        return int(value) if isinstance(value, int) else None

    # -- canonical views -----------------------------------------------------------------------------------
    def body_keys(self) -> dict[str, str]:
        """canonical body key → stored key (task heads excluded; buffers included, see :meth:`buffer_keys`)."""
        if self._body_keys is not None:
            return self._body_keys
        out: dict[str, str] = {}
        for key in self.stored:
            if self.arch.is_head(key):
                continue
            canonical = self.arch.canonical(key)
            if canonical in out:
                raise CheckpointError(f"{self.path}: both {out[canonical]!r} and {key!r} map to body key {canonical!r}")
            out[canonical] = key
        self._body_keys = out
        return out

    def buffer_keys(self) -> set[str]:
        return {k for k in self.body_keys() if self.arch.is_buffer(k)}

    def head_keys(self) -> list[str]:
        return [k for k in self.stored if self.arch.is_head(k)]

    def body_shape(self, canonical: str, stored: str | None = None) -> tuple[int, ...]:
        shape = tuple(self.stored[stored or self.body_keys()[canonical]].shape)
        return tuple(reversed(shape)) if self.arch.is_transposed(canonical) and len(shape) == 2 else shape

    def body_tensor(self, canonical: str, stored: str) -> Tensor:
        tensor = self.stored[stored]
        return tensor.T if tensor.ndim == 2 and self.arch.is_transposed(canonical) else tensor

    def body(self, keys: list[str] | None = None, *, dtypes: Mapping[str, torch.dtype] | None = None) -> LazyStateDict:
        """Canonical body (out × in), lazily; ``keys`` restricts it, ``dtypes`` casts where the dtype differs."""
        mapping = self.body_keys()
        wanted = list(mapping) if keys is None else keys
        getters: dict[str, Callable[[], Tensor]] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for key in wanted:
            stored = mapping[key]
            target = (dtypes or {}).get(key)

            def get(c: str = key, s: str = stored, d: torch.dtype | None = target) -> Tensor:
                t = self.body_tensor(c, s)
                return t.to(d) if d is not None and t.dtype != d else t

            getters[key] = get
            shapes[key] = self.body_shape(key, stored)
        return LazyStateDict(getters, shapes)

    def head(self) -> dict[str, Tensor]:
        """The task head, stored key names (``{"score.weight": ...}``); empty when the folder has none."""
        return {k: self.stored[k] for k in self.head_keys()}


def read_hf_folder(path: str | os.PathLike[str]) -> HFFolder:
    """An :class:`HFFolder` (config read now, weights mapped on first use). Raises :class:`MissingConfigError`."""
    return HFFolder(path)


def check_compatible(base: HFFolder, other: HFFolder, what: str, body_keys: list[str]) -> None:
    """Named errors when ``other`` cannot be merged with ``base``: model type, vocabulary, keys, shapes."""
    if other.model_type != base.model_type:
        raise ArchitectureMismatchError(
            f"{what} {other.path} is a {other.model_type} model ({', '.join(other.architectures) or 'no class'}), "
            f"the base {base.path} is a {base.model_type} model ({', '.join(base.architectures) or 'no class'})"
        )
    theirs = other.body_keys()
    from spectral.errors import MissingKeyError

    vocab = ""
    if base.vocab_size is not None and other.vocab_size is not None and base.vocab_size != other.vocab_size:
        vocab = (f"vocab_size {other.vocab_size} against the base's {base.vocab_size} (fine-tunes of one base share "
                 "its vocabulary)")
    for key in body_keys:
        if key not in theirs:
            raise MissingKeyError(f"{what} {other.path}: body parameter {key!r} of the base {base.path} is missing")
        a, b = base.body_shape(key), other.body_shape(key, theirs[key])
        if a != b:
            raise ArchitectureMismatchError(
                f"{what} {other.path}: parameter {key!r} has shape {b}, the base {base.path} has {a}"
                + (f"; {vocab}" if vocab else "")
            )
    if vocab:
        raise ArchitectureMismatchError(f"{what} {other.path}: {vocab}; the base is {base.path}")


# --- writing -----------------------------------------------------------------------------------------------------

def _non_weight_files(folder: Path) -> Iterator[Path]:
    """config.json, tokenizer files, generation config...: every plain file of the folder that holds no weights."""
    for p in sorted(folder.iterdir()):
        if p.is_file() and not _WEIGHT_FILE.search(p.name) and not p.name.startswith("."):
            yield p


def _shard_plan(sizes: Mapping[str, int], max_bytes: int) -> list[list[str]]:
    """Keys in order, cut into shards of at most ``max_bytes`` (a tensor larger than that has a shard of its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, n in sizes.items():
        if shards[-1] and size + n > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += n
    return shards


def write_safetensors_shards(
    folder: str | os.PathLike[str],
    layout: Mapping[str, tuple[torch.dtype, tuple[int, ...]]],
    tensor_of: Callable[[str], Tensor],
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    metadata: Mapping[str, str] | None = None,
    after_shard: Callable[[], None] | None = None,
) -> dict[str, str]:
    """Write the tensors of ``layout`` (key → dtype and shape, in order) into ``folder`` as the hub names them: one
    ``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` shards of at most ``max_shard_bytes`` (a larger
    tensor has a shard of its own) with ``model.safetensors.index.json``. ``tensor_of(key)`` computes each tensor when
    its bytes are due (:func:`~spectral.checkpoints.formats.write_safetensors_stream`), so only one is ever held;
    ``after_shard`` runs after each shard. Returns the weight map (key → file name)."""
    from spectral.checkpoints.formats import write_safetensors_stream

    folder = Path(folder)
    sizes = {key: math.prod(shape) * dtype.itemsize
             for key, (dtype, shape) in layout.items()}
    plan = _shard_plan(sizes, max_shard_bytes)
    weight_map: dict[str, str] = {}
    for i, keys in enumerate(plan, start=1):
        name = SAFE_SINGLE if len(plan) == 1 else f"model-{i:05d}-of-{len(plan):05d}.safetensors"
        write_safetensors_stream(folder / name, {key: layout[key] for key in keys}, tensor_of, metadata)
        weight_map.update({k: name for k in keys})
        if after_shard is not None:
            after_shard()
    if len(plan) > 1:
        index = {"metadata": {"total_size": sum(sizes.values()), **(metadata or {})}, "weight_map": weight_map}
        (folder / SAFE_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return weight_map


def write_hf_folder(
    out_dir: str | os.PathLike[str],
    base_folder: str | os.PathLike[str] | HFFolder,
    body: Mapping[str, Tensor],
    *,
    metadata: Mapping[str, Any] | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    inputs: list[str | os.PathLike[str]] = (),  # type: ignore[assignment]
) -> Path:
    """Write ``body`` (canonical keys and orientation) as a Hugging Face folder in the base's layout.

    Every stored tensor of the base is written under its stored name: body keys from ``body`` (GPT-2 Conv1D weights
    transposed back to in × out, cast to the base's dtype), everything else (base-only tensors such as a pooler or an
    ``lm_head``, buffers) as the base has it. The base's ``config.json``, tokenizer and other non-weight files are
    copied. Safetensors are sharded above ``max_shard_bytes`` with ``model.safetensors.index.json``; ``metadata``
    (method, parameters...) goes into every file's safetensors metadata as strings (JSON for non-strings).

    Atomic: the folder is built in a temporary sibling and renamed into place, so ``out_dir`` is never half-written.
    ``inputs`` (the base and fine-tune folders) may not be ``out_dir``.
    """

    from spectral.heap import release_memory
    from spectral.io import FILE_MODE, atomic_folder

    base = base_folder if isinstance(base_folder, HFFolder) else read_hf_folder(base_folder)
    out = Path(os.path.expanduser(str(out_dir)))
    for p in [base.path, *map(Path, inputs)]:
        if out.exists() and out.resolve() == Path(p).resolve():
            raise PoolConfigError(f"output folder {out} is one of the input model folders; choose another")
    if out.exists() and not out.is_dir():
        raise PoolConfigError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_hf_folder(out):
        raise PoolConfigError(f"output folder {out} exists, is not empty and is not a model folder: not replacing it")
    if max_shard_bytes <= 0:
        raise ValueError("max_shard_bytes must be positive")
    mapping = base.body_keys()
    unknown = sorted(set(body) - set(mapping))
    if unknown:
        raise CheckpointError(f"{len(unknown)} merged parameter(s) are not in the base {base.path}, e.g. {unknown[:3]}")
    stored_of = {s: c for c, s in mapping.items()}
    # Shards are planned from the base's tensors (the output has their names, shapes and dtypes) and filled one at a
    # time, reading ``body`` only then: a lazy body (Engine.lazy_merge) is computed shard by shard, never held whole.
    layout = {key: (ref.dtype, tuple(ref.shape)) for key, ref in base.stored.items()}

    def stored_tensor(key: str) -> Tensor:
        ref = base.stored[key]
        canonical = stored_of.get(key)
        if canonical is None or canonical not in body:
            return ref.contiguous()
        value = body[canonical]
        if value.ndim == 2 and base.arch.is_transposed(canonical):
            value = value.T
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"merged parameter {canonical!r} has shape {tuple(value.shape)} in the base's layout, the base "
                f"{base.path} stores {key!r} as {tuple(ref.shape)}"
            )
        return value.detach().to(ref.dtype).contiguous()

    meta = {"format": "pt"}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    with atomic_folder(out) as tmp:
        for src in _non_weight_files(base.path):
            shutil.copyfile(src, tmp / src.name)
        # one merged tensor at a time, header first: a shard is never held whole (nor serialised into bytes); after
        # each, the base's pages it read and the writer's freed buffers go back (spectral.heap)
        weight_map = write_safetensors_shards(tmp, layout, stored_tensor, max_shard_bytes=max_shard_bytes,
                                              metadata=meta, after_shard=release_memory)
        for p in tmp.iterdir():
            os.chmod(p, FILE_MODE)
    log.info("wrote %s: %d tensors in %d file(s)", out, len(layout), len(set(weight_map.values())))
    return out


def read_metadata(folder: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors metadata of a written folder (its first weights file)."""
    from safetensors import safe_open

    first = HFFolder(folder).files[0]
    if first.suffix != ".safetensors":
        return {}
    with safe_open(str(first), framework="pt") as handle:
        return dict(handle.metadata() or {})
