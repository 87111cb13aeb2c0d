"""Reading checkpoint files of every supported format into canonical weights.

Formats (detected from the file, not its name):

=====================  ============================================================  =================
format                 what the file holds                                           needs trust
=====================  ============================================================  =================
``open_clip``          open_clip ``CLIP.state_dict()`` (.pt/.pth/.bin or .safetensors)  no
``state_dict``         the same under a prefix (tall_masks / task_vectors             no
                       ``ImageEncoder.state_dict()``: ``model.visual.*``), or a bare
                       ``VisionTransformer`` state dict
``hf``                 Hugging Face ``CLIPVisionModel`` / ``CLIPModel`` weights        no
                       (.safetensors or pytorch_model.bin, or a folder holding one)
``pickle``             a whole pickled module: task_vectors ``src.modeling.ImageEncoder``  yes
                       (old open_clip class names included), or an open_clip CLIP
=====================  ============================================================  =================

Tensors stay on disk until used: safetensors files and zip-format ``torch.save`` files are memory-mapped
(copy-on-write), so a pool of twenty ViT-L/14 checkpoints costs address space, not RAM.
"""
from __future__ import annotations

import io
import json
import logging
import math
import re
import mmap
import os
import pickle
import pickletools
import struct
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spectral.checkpoints.errors import (
    TRUST_HINT,
    CheckpointError,
    CorruptCheckpointError,
    TruncatedCheckpointError,
    UnknownCheckpointFormatError,
    UnsafePickleError,
    UntrustedPickleError,
)
from spectral.checkpoints.keymap import CanonicalWeights, canonicalize
from spectral.heap import track_mapping, track_tensor_files
from spectral.roots import POOL_ROOTS_ENV, may_show_bytes

log = logging.getLogger(__name__)

__all__ = [
    "LoadedCheckpoint",
    "load_checkpoint",
    "read_object",
    "read_safetensors",
    "resolve_checkpoint_file",
    "sniff_format",
]

_ST_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        _ST_DTYPES[_name] = getattr(torch, _attr)

_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                    "open_clip_pytorch_model.bin")


@dataclass
class LoadedCheckpoint:
    """One checkpoint file, read: canonical image-tower weights, the open_clip text tower when present."""

    path: Path
    format: str  # "open_clip" | "state_dict" | "hf" | "pickle"
    visual: Mapping[str, Tensor]
    text: dict[str, Tensor] | None = None
    layout: str = ""
    #: for pickles: the class name of the top object (e.g. "src.modeling.ImageEncoder")
    object_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def openai_derived(self) -> bool:
        """Formats that by construction hold fine-tunes of OpenAI's CLIP (QuickGELU)."""
        return self.format in ("hf", "pickle") or self.layout.startswith("prefixed:model.")


def resolve_checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """A checkpoint path, or a folder holding one of the usual weight files (HF model folders)."""
    p = Path(path)
    if p.is_dir():
        for name in _HF_WEIGHT_FILES:
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"{p}: a folder without a weight file ({', '.join(_HF_WEIGHT_FILES)})")
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


# --- which format a file is in (from its first bytes, never its name) -----------------------------------------

#: the format names used in messages ("format tried: ...")
SAFETENSORS = "safetensors"
TORCH_ZIP = "torch.save zip archive"
TORCH_LEGACY = "legacy torch.save file"
#: ``torch.serialization.MAGIC_NUMBER``: the first pickled object of a legacy (pre-1.6) torch.save file
_TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_EXPECTED_MAGIC = (
    "a safetensors file starts with an 8-byte header length and '{', a torch.save archive with the zip "
    "signature 'PK\\x03\\x04', a legacy torch.save file with a pickle of torch's magic number"
)


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads plain values only: enough to check the magic number of a legacy torch.save file, and safe on any input."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(f"references the global {module}.{name}")


def _is_safetensors_head(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n < 100_000_000 and head[8:9] == b"{"


def sniff_format(path: str | os.PathLike[str]) -> str:
    """The checkpoint format of a file from its first bytes: :data:`SAFETENSORS`, :data:`TORCH_ZIP` or
    :data:`TORCH_LEGACY`.

    A file that matches none (random bytes, an image, a plain ``pickle.dump``) raises a named error saying what
    its first bytes are and what each format starts with, instead of being mistaken for a pickled object.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)  # bounded: the magic-number pickle below is read from these bytes only
    if not head:
        raise TruncatedCheckpointError(f"{path}: empty file (0 bytes), no checkpoint format can be read from it")
    if _is_safetensors_head(head):
        return SAFETENSORS
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        try:
            first: Any = _NoGlobalsUnpickler(io.BytesIO(head)).load()
            found = f"the value {first!r:.40}" if may_show_bytes(path) else "another value (not shown: the file " \
                f"is outside {POOL_ROOTS_ENV})"
        except Exception as exc:  # noqa: BLE001 - any failure means "not torch's magic number"
            first, found = None, f"unreadable ({type(exc).__name__}: {exc})"
        if isinstance(first, int) and first == _TORCH_MAGIC_NUMBER:
            return TORCH_LEGACY
        raise CorruptCheckpointError(
            f"{path}: wrong magic number for a {TORCH_LEGACY} (format tried: {TORCH_LEGACY}): it starts like a "
            f"Python pickle (protocol {head[1]}), but its first object is {found} where torch.save writes its "
            f"magic number {_TORCH_MAGIC_NUMBER:#x}; spectral reads torch.save and safetensors files, not bare pickles"
        )
    suffix = f" (the name says '{path.suffix}', the content does not)" if path.suffix else ""
    # the leading bytes help whoever owns the file; a served dashboard shows them only for files inside its roots
    shown = head[:16].hex(' ') if may_show_bytes(path) else f"not shown (the file is outside {POOL_ROOTS_ENV})"
    raise UnknownCheckpointFormatError(
        f"{path}: not a checkpoint in any format spectral reads{suffix}: its first bytes are {shown}, "
        f"whereas {_EXPECTED_MAGIC} (formats tried: {SAFETENSORS}, {TORCH_ZIP}, {TORCH_LEGACY}); the file may be "
        "corrupt or of another kind"
    )


# --- safetensors, memory-mapped ---------------------------------------------------------------------------------

def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """All tensors of a safetensors file as copy-on-write memory maps (nothing read until used).

    Validates the header against the file size, so a truncated file raises TruncatedCheckpointError and a
    header that does not decode raises CorruptCheckpointError (both naming the file and the format)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise TruncatedCheckpointError(f"{path}: {size} bytes, too short for a safetensors header (truncated)")
        (n,) = struct.unpack("<Q", raw)
        if 8 + n > size:
            raise TruncatedCheckpointError(
                f"{path}: safetensors header declares {n} bytes but the file has {size} bytes in all (truncated)"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(
                f"{path}: corrupt {SAFETENSORS} file: its {n}-byte JSON header does not decode ({exc})"
            ) from None
        if not isinstance(header, dict):
            raise CorruptCheckpointError(f"{path}: corrupt {SAFETENSORS} file: the header is not a JSON object")
        header.pop("__metadata__", None)
        data_start = 8 + n
        try:
            end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptCheckpointError(
                f"{path}: corrupt {SAFETENSORS} file: a header entry has no valid data_offsets ({exc!r})"
            ) from None
        if data_start + end > size:
            raise TruncatedCheckpointError(
                f"{path}: safetensors tensors end at byte {data_start + end} but the file has {size} bytes (truncated)"
            )
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size > 0 else None
    if mm is not None:
        track_mapping(mm)  # long merges let go of the pages they have read (spectral.heap)
    out: dict[str, Tensor] = {}
    for key, info in header.items():
        try:
            dtype = _ST_DTYPES[info["dtype"]]
        except KeyError:
            raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {info.get('dtype')!r}") from None
        shape = tuple(int(s) for s in info["shape"])
        begin, stop = (int(x) for x in info["data_offsets"])
        count = stop - begin
        itemsize = torch.empty((), dtype=dtype).element_size()
        numel = 1
        for s in shape:
            numel *= s
        if count != numel * itemsize:
            raise CorruptCheckpointError(
                f"{path}: corrupt {SAFETENSORS} file: tensor {key!r} declares shape {shape} ({info['dtype']}) "
                f"but {count} bytes"
            )
        if numel == 0:
            out[key] = torch.empty(shape, dtype=dtype)
            continue
        out[key] = torch.frombuffer(mm, dtype=dtype, count=numel, offset=data_start + begin).view(shape)
    return out


# --- torch.save files -------------------------------------------------------------------------------------------

def write_safetensors_stream(path: str | os.PathLike[str], layout: Mapping[str, tuple[torch.dtype, tuple[int, ...]]],
                             tensor_of: Any, metadata: Mapping[str, str] | None = None) -> None:
    """Write a safetensors file one tensor at a time: ``layout`` gives every tensor's dtype and shape (the header is
    written first), ``tensor_of(key)`` computes each tensor when its bytes are due, and only that tensor is held.

    ``safetensors.torch.save_file`` takes the whole dict and serialises it into one bytes object, so a 3 GB shard of
    a merged LLM held 6 GB at once; this writes the same format (8-byte header length, JSON header padded with
    spaces to 8 bytes, then the tensors' bytes back to back in the header's order), read back by safetensors itself
    (tests). A tensor whose dtype or shape differs from ``layout`` raises :class:`CheckpointError`.
    """
    names = {dtype: name for name, dtype in _ST_DTYPES.items()}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for key, (dtype, shape) in layout.items():
        if dtype not in names:
            raise CheckpointError(f"{path}: tensor {key!r} has a dtype safetensors cannot store ({dtype})")
        nbytes = math.prod(shape) * dtype.itemsize
        header[key] = {"dtype": names[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for key, (dtype, shape) in layout.items():
            value = tensor_of(key)
            if value.dtype != dtype or tuple(value.shape) != tuple(shape):
                raise CheckpointError(f"{path}: tensor {key!r} is {value.dtype} {tuple(value.shape)}, its header "
                                      f"says {dtype} {tuple(shape)}")
            f.write(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
            del value


def _check_torch_zip(path: Path) -> None:
    """A torch.save archive is a complete zip holding ``<name>/data.pkl``."""
    if not zipfile.is_zipfile(path):
        raise TruncatedCheckpointError(
            f"{path}: a {TORCH_ZIP} without its central directory (format tried: {TORCH_ZIP}; the file is truncated)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptCheckpointError(f"{path}: corrupt zip archive (format tried: {TORCH_ZIP}): {exc}") from None
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise CorruptCheckpointError(
            f"{path}: a zip archive but not a torch.save one (format tried: {TORCH_ZIP}): it has no data.pkl "
            f"(entries: {shown or 'none'})"
        )


def _torch_load(path: Path, *, weights_only: bool, pickle_module: Any = None) -> Any:
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": weights_only}
    if pickle_module is not None:
        kwargs["pickle_module"] = pickle_module
    if zipfile.is_zipfile(path):
        kwargs["mmap"] = True
    with warnings.catch_warnings():
        # legacy-format pickles of modules: torch compares their saved source with classes we never import
        warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
        warnings.filterwarnings("ignore", message=".*source code of class.*has changed")
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        obj = torch.load(path, **kwargs)
    if kwargs.get("mmap"):
        track_tensor_files(_tensors_of(obj))  # long merges let go of the pages they have read (spectral.heap)
    return obj


def _tensors_of(obj: Any, depth: int = 3) -> list[Tensor]:
    """The tensors of a loaded object: a state dict, a container of one, or a module."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, nn.Module):
        return list(obj.state_dict().values())
    if isinstance(obj, Mapping) and depth > 0:
        return [t for v in obj.values() for t in _tensors_of(v, depth - 1)]
    return []


def _refused_global(exc: BaseException) -> str | None:
    """The global a weights-only load refused (a pickled object: needs trust), or None when the refusal has
    another cause (an opcode the weights-only unpickler does not know: corrupt data)."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return found.group(1)
    return "" if "Unsupported global" in text else None


def read_object(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """The object stored in a checkpoint file: a dict of tensors for state dicts (safetensors or torch.save),
    or, for pickled modules, the module rebuilt through the restricted unpickler (only with trust).

    The format comes from the file's first bytes (:func:`sniff_format`); every failure names the file, the format
    tried and why it failed (truncated, corrupt, unknown format, or a pickled object that needs trust)."""
    path = resolve_checkpoint_file(path)
    fmt = sniff_format(path)
    if fmt == SAFETENSORS:
        return read_safetensors(path)
    if fmt == TORCH_ZIP:
        _check_torch_zip(path)
    try:
        return _torch_load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - classified below
        refused = _refused_global(exc)
        opcode = _unchecked_opcode(exc) if refused is None else None
        if refused is None and opcode is None:
            raise _read_error(path, fmt, exc) from None
    if not trust_pickle:
        if opcode is not None:
            raise UntrustedPickleError(
                f"{path}: a {fmt} whose pickle uses the opcode {opcode}, which the weights-only reader cannot "
                f"check, so it may hold arbitrary Python objects. {TRUST_HINT}"
            )
        raise UntrustedPickleError(
            f"{path} is a pickled Python object ({fmt}), not a plain state dict"
            + (f" (it references {refused})" if refused else "") + f". {TRUST_HINT}"
        )
    from spectral.checkpoints import safe_pickle

    try:
        return _torch_load(path, weights_only=False, pickle_module=safe_pickle.pickle_module)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _read_error(path, fmt, exc) from None


def _unchecked_opcode(exc: BaseException) -> str | None:
    """The name of a valid pickle opcode that torch's weights-only reader refused (e.g. FRAME in a protocol-4
    legacy file: a real pickle it cannot vouch for, which the restricted unpickler may read with trust), or None
    when the refused byte is no pickle opcode at all (the data is corrupt)."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    found = re.search(r"Unsupported operand (\d+)", str(exc))
    if found is None:
        return None
    code = int(found.group(1))
    op = pickletools.code2op.get(chr(code)) if 0 <= code < 256 else None
    return op.name if op is not None else None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _reason(exc: BaseException) -> str:
    """The informative line of a loader exception (torch's weights-only errors wrap it in paragraphs of advice)."""
    text = _ANSI.sub("", str(exc))
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        text = rest[0] if rest else text
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_error(path: Path, fmt: str, exc: BaseException) -> CheckpointError:
    reason = _reason(exc)
    truncated_markers = ("truncated", "EOF", "Ran out of input", "unexpected end", "failed finding central directory",
                         "PytorchStreamReader failed reading")
    if isinstance(exc, EOFError) or any(m in reason for m in truncated_markers):
        return TruncatedCheckpointError(
            f"{path}: cannot be read to the end (format tried: {fmt}): the file looks truncated ({reason})"
        )
    return CorruptCheckpointError(f"{path}: corrupt {fmt}: its content does not decode ({reason})")


# --- from objects to canonical weights --------------------------------------------------------------------------

def _unwrap_state(obj: Any) -> Any:
    """Common containers: {"state_dict": ...}, {"model": ...}, {"module": ...}."""
    if isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model", "module", "ema"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) or isinstance(inner, nn.Module):
                return inner
    return obj


def _object_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def load_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> LoadedCheckpoint:
    """Read one model checkpoint of any supported format into canonical ``visual.*`` weights."""
    file = resolve_checkpoint_file(path)
    obj = _unwrap_state(read_object(file, trust_pickle=trust_pickle))
    fmt: str
    object_type = ""
    if isinstance(obj, nn.Module):
        object_type = getattr(type(obj), "__qualname__", type(obj).__name__)
        try:
            state = obj.state_dict()
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{file}: the pickled {object_type} has no readable state_dict ({exc})") from None
        fmt = "pickle"
        if isinstance(obj, nn.Linear) and not any(k.endswith("conv1.weight") for k in state):
            raise CheckpointError(
                f"{file} holds a classification head ({object_type}, weight {tuple(obj.weight.shape)}), not a model"
            )
    elif isinstance(obj, Mapping):
        state = obj
        fmt = ""
    elif isinstance(obj, Tensor):
        raise CheckpointError(f"{file} holds a single tensor of shape {tuple(obj.shape)}, not a model")
    else:
        raise CheckpointError(f"{file} holds a {_object_name(obj)}, not a model state dict")
    weights: CanonicalWeights = canonicalize(state, str(file))
    if not fmt:
        if weights.layout == "hf":
            fmt = "hf"
        elif weights.layout == "open_clip":
            fmt = "open_clip"
        else:
            fmt = "state_dict"
    return LoadedCheckpoint(path=file, format=fmt, visual=weights.visual, text=weights.text, layout=weights.layout,
                            object_type=object_type)
