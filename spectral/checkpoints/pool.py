"""A :class:`~spectral.pool.ModelPool` over checkpoints on disk: a small YAML file or one of the papers' layouts.

YAML (paths relative to the file)::

    name: my-vit-b-32-pool          # optional; default: the file's absolute path
    architecture: ViT-B-32          # optional; detected from the base checkpoint's shapes
    quick_gelu: true                # optional; default true for the papers' formats (OpenAI CLIP fine-tunes)
    base: checkpoints/ViT-B-32/zeroshot.pt
    text_checkpoint: clip.pt        # optional: an open_clip CLIP state dict whose text tower builds zero-shot heads
    data_root: data/                # optional: the papers' data location; a task without 'data:' is found under
                                    # it by its data set's layout (MNIST/raw, svhn/, dtd/, ...), and relative
                                    # 'data:' paths resolve against it
    tasks:
      - name: Cars
        checkpoint: checkpoints/ViT-B-32/Cars/finetuned.pt
        head: checkpoints/ViT-B-32/head_Cars.pt       # or omit: zero-shot head from the class names
        class_names: [...]                            # optional; default: the benchmark's (see dataset)
        templates: ["a photo of a {c}."]              # optional; default: the benchmark's
        dataset: Cars                                 # optional benchmark name; default: the task name
        data: cars                                    # its data: the data location, the data set's root or its
                                                      # own folder (read only as this data set; see
                                                      # spectral.data.layouts), or image folders train/, test/

``tasks`` may also be a mapping ``{Cars: {checkpoint: ...}, ...}``.

Discovered layouts (point at the folder holding one model's files, or a parent with exactly one model):

* task_vectors: ``<model>/zeroshot.pt``, ``<model>/<Task>/finetuned.pt``, ``<model>/head_<Task>.pt``;
* tall_masks: ``<model>/<Task>Val/nonlinear_finetuned.pt``, ``<model>/<Task>Val/nonlinear_zeroshot.pt`` (or
  ``<model>/nonlinear_zeroshot.pt``), ``<model>/head_<Task>Val.pt``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from spectral.checkpoints import architecture as arch
from spectral.checkpoints.errors import (
    ArchitectureMismatchError,
    CheckpointError,
    MissingTaskError,
    PoolConfigError,
)
from spectral.checkpoints.formats import LoadedCheckpoint, load_checkpoint
from spectral.checkpoints.headfiles import load_head, normalise_rows
from spectral.checkpoints.keymap import LazyStateDict, shape_of
from spectral.data.templates import ALL_DATASETS, canonical_dataset_name
from spectral.pool import ImagePool, ModelPool, Split

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointPool",
    "PoolSpec",
    "TaskSpec",
    "discover_pool",
    "open_pool",
    "read_pool_yaml",
]

POOL_FILE_NAMES = ("pool.yaml", "pool.yml", "spectral-pool.yaml")

@dataclass
class TaskSpec:
    """One task of a pool: its fine-tuned checkpoint and how to get its head and data."""

    name: str
    checkpoint: Path
    head: Path | None = None
    class_names: list[str] | None = None
    templates: list[str] | None = None
    dataset: str | None = None
    data: Path | None = None

    @property
    def benchmark(self) -> str | None:
        """The benchmark data set this task is (``"Cars"`` for ``CarsVal``), or None."""
        return canonical_dataset_name(self.dataset or self.name)


@dataclass
class PoolSpec:
    """What a pool is made of; from :func:`read_pool_yaml` or :func:`discover_pool`."""

    base: Path
    tasks: list[TaskSpec]
    architecture: str | None = None
    quick_gelu: bool | None = None
    text_checkpoint: Path | None = None
    name: str | None = None
    source: Path | None = None
    layout: str = "yaml"
    data_root: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- YAML ------------------------------------------------------------------------------------------------------

def _path(value: Any, base_dir: Path, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise PoolConfigError(f"{what} must be a path, got {value!r}")
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (base_dir / p)


def _str_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in value):
        raise PoolConfigError(f"{what} must be a list of strings")
    return [str(v) for v in value]


def read_pool_yaml(path: str | os.PathLike[str]) -> PoolSpec:
    """Parse a pool YAML file (see the module docstring)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise PoolConfigError(f"{file}: no such pool file")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise PoolConfigError(f"{file}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PoolConfigError(f"{file}: a pool file is a mapping with 'base' and 'tasks'")
    here = file.resolve().parent
    unknown = set(data) - {"name", "architecture", "quick_gelu", "base", "text_checkpoint", "data_root", "tasks",
                           "description"}
    if unknown:
        raise PoolConfigError(f"{file}: unknown field(s) {sorted(unknown)}")
    if "base" not in data:
        raise PoolConfigError(f"{file}: missing 'base' (the pre-trained checkpoint)")
    raw_tasks = data.get("tasks")
    if not raw_tasks:
        raise PoolConfigError(f"{file}: 'tasks' is empty; list at least one fine-tuned checkpoint")
    if isinstance(raw_tasks, dict):
        items = []
        for name, entry in raw_tasks.items():
            entry = {"checkpoint": entry} if isinstance(entry, str) else dict(entry or {})
            entry.setdefault("name", name)
            items.append(entry)
    elif isinstance(raw_tasks, list):
        items = [dict(t) if isinstance(t, dict) else t for t in raw_tasks]
    else:
        raise PoolConfigError(f"{file}: 'tasks' must be a list or a mapping")
    data_root = _path(data["data_root"], here, "data_root") if data.get("data_root") else None
    tasks: list[TaskSpec] = []
    for i, entry in enumerate(items):
        if not isinstance(entry, dict):
            raise PoolConfigError(f"{file}: task #{i + 1} must be a mapping with at least 'name' and 'checkpoint'")
        bad = set(entry) - {"name", "checkpoint", "head", "class_names", "templates", "dataset", "data"}
        if bad:
            raise PoolConfigError(f"{file}: task #{i + 1}: unknown field(s) {sorted(bad)}")
        name = entry.get("name")
        if not name:
            raise PoolConfigError(f"{file}: task #{i + 1} has no 'name'")
        if not entry.get("checkpoint"):
            raise MissingTaskError(f"{file}: task {name!r} has no 'checkpoint'")
        data_dir = None
        if entry.get("data"):
            data_dir = _path(entry["data"], data_root or here, f"task {name!r} data")
        tasks.append(TaskSpec(
            name=str(name),
            checkpoint=_path(entry["checkpoint"], here, f"task {name!r} checkpoint"),
            head=_path(entry["head"], here, f"task {name!r} head") if entry.get("head") else None,
            class_names=_str_list(entry.get("class_names"), f"task {name!r} class_names"),
            templates=_str_list(entry.get("templates"), f"task {name!r} templates"),
            dataset=str(entry["dataset"]) if entry.get("dataset") else None,
            data=data_dir,
        ))
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PoolConfigError(f"{file}: task names must be unique, repeated: {dupes}")
    qg = data.get("quick_gelu")
    if qg is not None and not isinstance(qg, bool):
        raise PoolConfigError(f"{file}: quick_gelu must be true or false")
    return PoolSpec(
        base=_path(data["base"], here, "base"),
        tasks=tasks,
        architecture=str(data["architecture"]) if data.get("architecture") else None,
        quick_gelu=qg,
        text_checkpoint=_path(data["text_checkpoint"], here, "text_checkpoint") if data.get("text_checkpoint") else None,
        name=str(data["name"]) if data.get("name") else None,
        source=file.resolve(),
        layout="yaml",
        data_root=data_root,
    )


# --- discovery -------------------------------------------------------------------------------------------------

def _task_order(names: list[str]) -> list[str]:
    """Benchmark tasks in the papers' order, others after them alphabetically."""
    index = {n: i for i, n in enumerate(ALL_DATASETS)}
    return sorted(names, key=lambda n: (0, index[canonical_dataset_name(n) or ""]) if canonical_dataset_name(n) in index
                  else (1, n.lower()))


def _model_dir_layout(d: Path) -> str | None:
    if not d.is_dir():
        return None
    if (d / "zeroshot.pt").is_file() and any((c / "finetuned.pt").is_file() for c in d.iterdir() if c.is_dir()):
        return "task_vectors"
    subdirs = [c for c in d.iterdir() if c.is_dir()]
    if any((c / "nonlinear_finetuned.pt").is_file() for c in subdirs):
        return "tall_masks"
    return None


def _find_model_dirs(root: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    frontier = [root]
    for _depth in range(3):
        nxt = []
        for d in frontier:
            layout = _model_dir_layout(d)
            if layout:
                found.append((d, layout))
            elif d.is_dir():
                nxt.extend(sorted(c for c in d.iterdir() if c.is_dir()))
        if found:
            return found
        frontier = nxt
    return found


def _find_data_dir(data_root: Path | None, task: str, dataset: str | None = None) -> Path | None:
    """The task's data under the data location ``data_root``: a benchmark's by its layouts and the papers' folder
    names (:func:`spectral.data.layouts.find_data`), any other task's in a folder named after it."""
    if data_root is None:
        return None
    canon = canonical_dataset_name(dataset or task)
    if canon is not None:
        from spectral.data.layouts import find_data

        return find_data(canon, data_root)
    for n in dict.fromkeys([task, task.lower()]):
        if (data_root / n).is_dir():
            return data_root / n
    return None


def discover_pool(directory: str | os.PathLike[str], *, model: str | None = None,
                  data_root: str | os.PathLike[str] | None = None) -> PoolSpec:
    """A :class:`PoolSpec` from the task_vectors or tall_masks checkpoint layout under ``directory``.

    ``model`` picks one model folder when several are present (``"ViT-B-32"``); ``data_root`` is the papers' data
    location: each task's data is looked up under it by its data set's layouts (``dtd``, ``EuroSAT_splits``,
    ``MNIST/raw``, ``cifar-10-batches-py``, ...; see :mod:`spectral.data.layouts`), and it stays the pool's
    default for tasks whose data was not found."""
    root = Path(directory)
    if not root.is_dir():
        raise PoolConfigError(f"{root}: not a folder")
    from spectral.checkpoints.hf_pool import discover_hf_pool, is_hf_pool_dir  # Hugging Face model folders

    if is_hf_pool_dir(root):
        return discover_hf_pool(root, model=model, data_root=data_root)
    found = _find_model_dirs(root)
    if model is not None:
        found = [(d, lay) for d, lay in found if d.name == model]
    if not found:
        raise PoolConfigError(
            f"{root}: no checkpoint layout found"
            + (f" for model {model!r}" if model else "")
            + " (expected <model>/zeroshot.pt with <Task>/finetuned.pt, or <model>/<Task>Val/nonlinear_finetuned.pt)"
        )
    if len(found) > 1:
        raise PoolConfigError(
            f"{root}: several model folders found ({', '.join(str(d) for d, _ in found)}); point at one of them"
        )
    model_dir, layout = found[0]
    droot = Path(data_root) if data_root is not None else None
    tasks: list[TaskSpec] = []
    if layout == "task_vectors":
        base = model_dir / "zeroshot.pt"
        names = [c.name for c in model_dir.iterdir() if c.is_dir() and (c / "finetuned.pt").is_file()]
        for name in _task_order(names):
            head = model_dir / f"head_{name}.pt"
            tasks.append(TaskSpec(name=name, checkpoint=model_dir / name / "finetuned.pt",
                                  head=head if head.is_file() else None, dataset=name,
                                  data=_find_data_dir(droot, name)))
    else:
        folders = [c for c in model_dir.iterdir() if c.is_dir() and (c / "nonlinear_finetuned.pt").is_file()]
        shared = model_dir / "nonlinear_zeroshot.pt"
        per_task = sorted(c / "nonlinear_zeroshot.pt" for c in folders if (c / "nonlinear_zeroshot.pt").is_file())
        if shared.is_file():
            base = shared
        elif per_task:
            base = per_task[0]
        else:
            raise MissingTaskError(
                f"{model_dir}: tall_masks layout without nonlinear_zeroshot.pt (looked in {model_dir} and "
                "every <Task>Val folder)"
            )
        by_name = {(c.name[:-3] if c.name.endswith("Val") else c.name): c for c in folders}
        for name in _task_order(list(by_name)):
            folder = by_name[name]
            head = model_dir / f"head_{folder.name}.pt"
            tasks.append(TaskSpec(name=name, checkpoint=folder / "nonlinear_finetuned.pt",
                                  head=head if head.is_file() else None, dataset=folder.name,
                                  data=_find_data_dir(droot, name, folder.name)))
    return PoolSpec(base=base, tasks=tasks, architecture=model_dir.name if arch.tower_shape_of_config(model_dir.name)
                    else None, quick_gelu=True, source=model_dir.resolve(), layout=layout, data_root=droot,
                    name=None)


# --- the pool --------------------------------------------------------------------------------------------------

class CheckpointPool(ImagePool):
    """Base and fine-tuned image towers read from checkpoint files, with heads and local data.

    Loading is lazy: nothing is read until asked for, tensors stay memory-mapped where the format allows, and
    pickled files are refused unless ``trust_pickle=True``. Every checkpoint is checked against the pool's
    architecture when read (named errors for missing keys, shapes and base/task mismatches).
    """

    def __init__(self, spec: PoolSpec, *, trust_pickle: bool = False, device: str | torch.device = "cpu") -> None:
        if not spec.tasks:
            raise PoolConfigError("a pool needs at least one task")
        self.spec = spec
        self.trust_pickle = trust_pickle
        self.device = device
        self.name = spec.name or str(spec.source or spec.base)
        self.task_names = [t.name for t in spec.tasks]
        self._tasks = {t.name: t for t in spec.tasks}
        self._base: LoadedCheckpoint | None = None
        self._architecture: str | None = spec.architecture
        self._heads: dict[str, Tensor] = {}
        self._datasets: dict[tuple[str, str], Dataset] = {}
        self._clip: nn.Module | None = None
        self._text_digest: str | None = None
        for t in spec.tasks:
            if not t.checkpoint.exists():
                raise MissingTaskError(f"task {t.name!r}: checkpoint {t.checkpoint} does not exist")
        if not spec.base.exists():
            raise MissingTaskError(f"base checkpoint {spec.base} does not exist")

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, trust_pickle: bool = False) -> "CheckpointPool":
        return cls(read_pool_yaml(path), trust_pickle=trust_pickle)

    @classmethod
    def discover(cls, directory: str | os.PathLike[str], *, trust_pickle: bool = False, model: str | None = None,
                 data_root: str | os.PathLike[str] | None = None) -> "CheckpointPool":
        return cls(discover_pool(directory, model=model, data_root=data_root), trust_pickle=trust_pickle)

    # -- architecture ------------------------------------------------------------------------------------------
    def _load_base(self) -> LoadedCheckpoint:
        if self._base is None:
            loaded = load_checkpoint(self.spec.base, trust_pickle=self.trust_pickle)
            if loaded.format == "hf" and "visual.proj" not in loaded.visual:
                raise CheckpointError(
                    f"{loaded.path}: a Hugging Face CLIPVisionModel has no visual projection, so it cannot be the "
                    "base of a pool; use the CLIPModel checkpoint (with visual_projection) or an open_clip one"
                )
            detected = arch.detect_architecture(loaded.visual, str(loaded.path))
            if self._architecture is None:
                self._architecture = detected
            elif arch.family_name(self._architecture) != arch.family_name(detected):
                declared = arch.tower_shape_of_config(self._architecture)
                if declared != arch.tower_shape_of_config(detected):
                    raise ArchitectureMismatchError(
                        f"{loaded.path} is a {detected}, but the pool declares architecture {self._architecture}"
                    )
            self._validate(loaded, "base checkpoint")
            self._base = loaded
        return self._base

    @property
    def architecture(self) -> str:  # type: ignore[override]
        if self._architecture is None:
            self._load_base()
        assert self._architecture is not None
        return self._architecture

    @property
    def quick_gelu(self) -> bool:
        """Whether the towers use QuickGELU (OpenAI CLIP); see :mod:`spectral.checkpoints.architecture`."""
        if self.spec.quick_gelu is not None:
            return self.spec.quick_gelu
        if arch.uses_quick_gelu(self.architecture):
            return True
        return self._load_base().openai_derived

    def _validate(self, loaded: LoadedCheckpoint, what: str) -> None:
        arch.validate_against(_with_proj(loaded, self._base), self.architecture, f"{what} {loaded.path}")

    # -- weights -----------------------------------------------------------------------------------------------
    def base_state_dict(self) -> Mapping[str, Tensor]:  # type: ignore[override]
        """Pre-trained image tower (canonical ``visual.*`` keys, CPU, memory-mapped where possible)."""
        return self._load_base().visual

    def task_spec(self, task: str) -> TaskSpec:
        try:
            return self._tasks[task]
        except KeyError:
            raise MissingTaskError(f"pool {self.name!r} has no task {task!r}; tasks are {self.task_names}") from None

    def finetuned_state_dict(self, task: str) -> Mapping[str, Tensor]:  # type: ignore[override]
        """Fine-tuned image tower of one task, checked against the base (architecture, keys, shapes)."""
        spec = self.task_spec(task)
        base = self._load_base()
        loaded = load_checkpoint(spec.checkpoint, trust_pickle=self.trust_pickle)
        state = _with_proj(loaded, base)
        try:
            other = arch.detect_architecture(state, str(loaded.path))
        except CheckpointError:
            other = None
        if other is not None and arch.tower_shape_of_config(other) != arch.tower_shape_of_config(self.architecture):
            raise ArchitectureMismatchError(
                f"task {task!r}: {loaded.path} is a {other}, the base checkpoint {base.path} is a {self.architecture}"
            )
        arch.validate_against(state, self.architecture, f"task {task!r}: {loaded.path}")
        return _match_dtypes(state, base.visual, f"task {task!r}: {loaded.path}")

    def build_image_encoder(self) -> nn.Module:
        return arch.build_image_encoder(self.architecture, quick_gelu=self.quick_gelu)

    # -- heads -------------------------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        base = self._load_base().visual
        return shape_of(base, "visual.proj")[1] if "visual.proj" in base else shape_of(base, "visual.conv1.weight")[0]

    def class_names(self, task: str) -> list[str]:
        spec = self.task_spec(task)
        if spec.class_names:
            return list(spec.class_names)
        if spec.benchmark is not None:
            from spectral.data.templates import class_names

            return class_names(spec.benchmark)
        return super().class_names(task)

    def templates(self, task: str) -> list[str]:
        spec = self.task_spec(task)
        if spec.templates:
            return list(spec.templates)
        if spec.benchmark is not None:
            from spectral.data.templates import get_templates

            return get_templates(spec.benchmark)
        return ["a photo of a {c}."]

    def head(self, task: str) -> Tensor:
        """(num_classes, embed_dim), rows L2-normalised: the task's head file, else a zero-shot head from the base
        model's text tower with the benchmark's (or the YAML's) class names and templates."""
        if task not in self._heads:
            spec = self.task_spec(task)
            if spec.head is not None:
                self._heads[task] = load_head(spec.head, trust_pickle=self.trust_pickle, embed_dim=self.embed_dim)
            else:
                self._heads[task] = self._zeroshot_head(task)
        return self._heads[task]

    def _text_weights(self) -> tuple[dict[str, Tensor], Path]:
        if self.spec.text_checkpoint is not None:
            loaded = load_checkpoint(self.spec.text_checkpoint, trust_pickle=self.trust_pickle)
            source = loaded.path
        else:
            loaded = self._load_base()
            source = loaded.path
        text = loaded.text or {}
        if not any(k.startswith("transformer.") for k in text) or "token_embedding.weight" not in text:
            raise CheckpointError(
                f"{source} has no complete CLIP text tower (the task_vectors/tall_masks encoders delete it), so "
                "zero-shot heads cannot be built from it: give each task a head file ('head:' in the pool YAML, "
                "head_<Task>.pt beside the checkpoints) or 'text_checkpoint:' pointing at an open_clip CLIP state dict"
            )
        return text, source

    def build_clip_model(self) -> nn.Module:
        """The whole CLIP (base image tower + text tower) for zero-shot heads; built once, no download."""
        if self._clip is None:
            text, source = self._text_weights()
            model = arch.build_clip_model(self.architecture, quick_gelu=self.quick_gelu)
            expected = model.state_dict()
            state = {k: v for k, v in text.items() if k in expected}
            for k, v in self.base_state_dict().items():
                state[k] = v
            missing = [k for k in expected if k not in state and not k.startswith("visual.")]
            if missing:
                raise CheckpointError(f"{source}: text tower parameters missing, e.g. {missing[:3]}")
            for k, v in state.items():
                if tuple(v.shape) != tuple(expected[k].shape):
                    raise CheckpointError(
                        f"{source}: parameter {k!r} has shape {tuple(v.shape)}, {self.architecture} expects "
                        f"{tuple(expected[k].shape)}"
                    )
            model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
            self._clip = model.eval()
        return self._clip

    def _zeroshot_head(self, task: str) -> Tensor:
        spec = self.task_spec(task)
        if spec.class_names is None and spec.benchmark is None:
            raise CheckpointError(
                f"task {task!r} has no head file and is not one of the 20 benchmarks: give 'head:' or "
                "'class_names:' in the pool YAML"
            )
        names, templates = self.class_names(task), self.templates(task)
        if self._text_digest is None:
            text, _ = self._text_weights()
            self._text_digest = _text_digest(text)
        key = _head_cache_key(self.architecture, self.quick_gelu, self._text_digest, names, templates)
        cached = _read_cached_head(key)
        if cached is not None:
            return cached
        heads_mod = _eval_heads()
        import open_clip

        tokenizer = open_clip.get_tokenizer(self.architecture)
        head = heads_mod.zeroshot_head(self.build_clip_model(), tokenizer, names, templates, self.device)
        head = normalise_rows(head)
        _write_cached_head(key, head, {"task": task, "architecture": self.architecture})
        return head

    # -- data --------------------------------------------------------------------------------------------------
    def data_location(self, task: str) -> tuple[Path | None, bool]:
        """Where the task's data is looked up: ``(path, under_location)``, its ``data:`` folder
        (``under_location=False``), else the pool's ``data_root`` (the data location, searched by the data set's
        own folder names), else ``(None, False)``."""
        spec = self.task_spec(task)
        if spec.data is not None:
            return spec.data, False
        if self.spec.data_root is not None:
            if spec.benchmark is not None:
                return self.spec.data_root, True
            found = _find_data_dir(self.spec.data_root, task, spec.dataset)
            return (found, False) if found is not None else (self.spec.data_root / task, False)
        return None, False

    def dataset(self, task: str, split: Split) -> Dataset:
        if (task, split) not in self._datasets:
            from spectral.data.folders import DatasetError, clip_preprocess, open_folder_dataset

            spec = self.task_spec(task)
            path, under_location = self.data_location(task)
            if path is None:
                raise DatasetError(
                    f"task {task!r} has no data: set 'data:' for it or 'data_root:' (the data location) in the pool "
                    "YAML (`pool discover --data-root` writes both)"
                )
            self._datasets[(task, split)] = open_folder_dataset(
                path, split, transform=clip_preprocess(self.architecture),
                dataset=spec.benchmark or spec.dataset or task, class_names=self._known_class_names(task),
                under_location=under_location,
            )
        return self._datasets[(task, split)]

    def _known_class_names(self, task: str) -> list[str] | None:
        spec = self.task_spec(task)
        if spec.class_names:
            return list(spec.class_names)
        if spec.benchmark is not None:
            return self.class_names(task)
        return None

    # -- reporting ---------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {"name": self.name, "architecture": self._architecture or self.spec.architecture,
                                   "tasks": list(self.task_names)}
        info.update({
            "layout": self.spec.layout,
            "quick_gelu": self.spec.quick_gelu,
            "base": str(self.spec.base),
            "source": str(self.spec.source) if self.spec.source else None,
        })
        return info

    def check(self, *, heads: bool = True, data: bool = True) -> list[dict[str, Any]]:
        """Load everything once and report per item: ``{"item", "ok", "detail"}`` (errors are caught and
        reported, so one bad task does not hide the others)."""
        report: list[dict[str, Any]] = []

        def record(item: str, fn: Any) -> Any:
            try:
                detail = fn()
                report.append({"item": item, "ok": True, "detail": detail})
                return detail
            except Exception as exc:  # noqa: BLE001 - reported, not swallowed silently
                report.append({"item": item, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
                return None

        base_ok = record("base", lambda: f"{self._load_base().format} {self.architecture} "
                                         f"({'QuickGELU' if self.quick_gelu else 'GELU'}) {self.spec.base}")
        if base_ok is None:
            return report
        for task in self.task_names:
            spec = self.task_spec(task)
            record(f"{task}: checkpoint", lambda t=task, s=spec: f"{len(self.finetuned_state_dict(t))} tensors from {s.checkpoint}")
            n_classes = None
            if heads:
                h = record(f"{task}: head", lambda t=task: tuple(self.head(t).shape))
                n_classes = h[0] if h else None
            if data:
                if n_classes is None and spec.head is None:  # the zero-shot head would have one row per class name
                    known = self._known_class_names(task)
                    n_classes = len(known) if known else None

                def data_detail(t: str = task, c: int | None = n_classes) -> str:
                    ds = self.dataset(t, "test")
                    classes = getattr(ds, "classes", None)
                    if c is not None and classes is not None and len(classes) != c:
                        raise CheckpointError(f"data has {len(classes)} classes, the head has {c}")
                    return f"{len(ds)} test images ({getattr(ds, 'description', '') or type(ds).__name__})"

                record(f"{task}: data", data_detail)
        return report


def _with_proj(loaded: LoadedCheckpoint, base: LoadedCheckpoint | None) -> Mapping[str, Tensor]:
    """HF CLIPVisionModel files have no projection: take the base's (it is frozen in FusionBench's fine-tunes)."""
    state = loaded.visual
    if "visual.proj" in state or base is None or "visual.proj" not in base.visual or loaded.format != "hf":
        return state
    log.info("%s has no visual projection (a CLIPVisionModel); using the base checkpoint's", loaded.path)
    return _Overlay(state, {"visual.proj": base.visual["visual.proj"]})


class _Overlay(Mapping[str, Tensor]):
    def __init__(self, state: Mapping[str, Tensor], extra: dict[str, Tensor]) -> None:
        self._state, self._extra = state, extra

    def __getitem__(self, key: str) -> Tensor:
        return self._extra[key] if key in self._extra else self._state[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self._state
        yield from (k for k in self._extra if k not in self._state)

    def __len__(self) -> int:
        return len(set(self._state) | set(self._extra))

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._extra[key].shape) if key in self._extra else shape_of(self._state, key)


def _match_dtypes(state: Mapping[str, Tensor], base: Mapping[str, Tensor], source: str) -> Mapping[str, Tensor]:
    """Cast floating tensors whose dtype differs from the base's (e.g. an fp16 fine-tune of an fp32 base)."""
    if isinstance(state, (LazyStateDict, _Overlay)):
        sample = [k for k in ("visual.conv1.weight",) if k in base]
        if not sample or state[sample[0]].dtype == base[sample[0]].dtype:
            return state
        out = {k: state[k] for k in state}
    else:
        out = dict(state)
    changed = 0
    for k, v in out.items():
        ref = base.get(k)
        if ref is not None and v.is_floating_point() and ref.is_floating_point() and v.dtype != ref.dtype:
            out[k] = v.to(ref.dtype)
            changed += 1
    if changed:
        log.warning("%s: cast %d tensors to the base checkpoint's dtype", source, changed)
    return out


# --- zero-shot head cache --------------------------------------------------------------------------------------

def _eval_heads() -> Any:
    try:
        from spectral.eval import heads
    except ImportError as exc:  # pragma: no cover - the eval package is part of spectral
        raise CheckpointError(f"zero-shot heads need spectral.eval.heads ({exc})") from None
    return heads


def _text_digest(text: Mapping[str, Tensor]) -> str:
    """SHA-256 of a text tower's content (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for k in sorted(text):
        t = text[k].detach().contiguous().reshape(-1)
        h.update(k.encode())
        h.update(str(tuple(text[k].shape)).encode())
        h.update(str(t.dtype).encode())
        if t.numel():
            h.update(memoryview(t.view(torch.uint8).numpy()))
    return h.hexdigest()


def _head_cache_key(architecture: str, quick_gelu: bool, text_digest: str, names: list[str],
                    templates: list[str]) -> str:
    h = hashlib.sha256()
    h.update(f"zeroshot-head-v1|{arch.family_name(architecture)}|{quick_gelu}|{text_digest}|".encode())
    h.update("\x00".join(names).encode())
    h.update(b"\x01")
    h.update("\x00".join(templates).encode())
    return h.hexdigest()[:32]


def _head_cache_path(key: str) -> Path | None:
    try:
        from spectral.cache import default_cache_dir
    except ImportError:  # pragma: no cover
        return None
    return default_cache_dir() / "heads" / f"{key}.safetensors"


def _read_cached_head(key: str) -> Tensor | None:
    path = _head_cache_path(key)
    if path is None or not path.is_file():
        return None
    try:
        from spectral.checkpoints.formats import read_safetensors

        return read_safetensors(path)["head"].clone()
    except Exception:  # noqa: BLE001 - a bad cache entry is recomputed
        return None


def _write_cached_head(key: str, head: Tensor, meta: dict[str, str]) -> None:
    path = _head_cache_path(key)
    if path is None:
        return
    try:
        from spectral.io import atomic_save_tensors

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(path, {"head": head.contiguous()}, meta)
    except Exception as exc:  # noqa: BLE001 - caching is best effort
        log.debug("could not cache zero-shot head %s: %s", path, exc)


# --- entry point -----------------------------------------------------------------------------------------------

def _pool_of_spec(spec: PoolSpec, trust_pickle: bool) -> ModelPool:
    """A CheckpointPool, or an HFPool when the base is a Hugging Face model folder (config.json)."""
    from spectral.checkpoints.hf import is_language_folder
    from spectral.checkpoints.lora import is_adapter_folder, lora_pool

    if any(is_adapter_folder(t.checkpoint) for t in spec.tasks):  # LoRA adapters on the base (issue 25)
        return lora_pool(spec, trust_pickle=trust_pickle)
    if spec.layout == "hf" or is_language_folder(spec.base):
        from spectral.checkpoints.hf_pool import HFPool

        return HFPool(spec)
    return CheckpointPool(spec, trust_pickle=trust_pickle)


def open_pool(spec: str | os.PathLike[str], *, trust_pickle: bool = False, **kwargs: Any) -> CheckpointPool:
    """A pool from a YAML file, a folder holding ``pool.yaml``, or a folder in one of the papers' layouts
    (Hugging Face model folders give an :class:`~spectral.checkpoints.hf_pool.HFPool`). ``data_root`` (the data
    location) is the default of a pool YAML without one, and searched by discovery."""
    path = Path(os.path.expanduser(str(spec)))
    data_root = kwargs.get("data_root")

    def from_yaml(file: Path) -> CheckpointPool:
        pool_spec = read_pool_yaml(file)
        if pool_spec.data_root is None and data_root is not None:
            pool_spec.data_root = Path(os.path.expanduser(str(data_root)))
        return _pool_of_spec(pool_spec, trust_pickle)  # type: ignore[return-value]

    if path.is_file():
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise PoolConfigError(f"{path}: a pool is a .yaml file or a folder, not a single checkpoint")
        return from_yaml(path)
    if path.is_dir():
        for name in POOL_FILE_NAMES:
            if (path / name).is_file():
                return from_yaml(path / name)
        return _pool_of_spec(discover_pool(path, **kwargs), trust_pickle)  # type: ignore[return-value]
    raise PoolConfigError(f"{spec}: no such pool file or folder (zoo pools are named zoo-8, zoo-14, zoo-20)")
