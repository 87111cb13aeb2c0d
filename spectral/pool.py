"""A model pool: one pre-trained body, T fine-tuned bodies, their per-task heads, data and metrics.

This is the seam between where checkpoints come from (the demo zoos, the papers' checkpoints on disk, Hugging Face
model folders) and everything that uses them (TaskSet/engine, evaluation, the dashboard, the CLI). Every loader
returns a :class:`ModelPool`; nothing downstream knows which it got.

A pool has a *family* that says how its models are evaluated; the family is a property of the pool, not a branch
in every module:

- ``"clip"`` (:class:`ImagePool`): CLIP image towers; canonical parameter names are those of open_clip's
  ``CLIP.state_dict()`` for the image tower, prefixed ``visual.``; heads are class-name embeddings; image data;
  accuracy.
- ``"lm"`` (:class:`spectral.checkpoints.hf_pool.HFPool`): Hugging Face language models; canonical names are the
  bare base model's own keys, every 2-D weight out × in; heads are each fine-tune's own (``score``,
  ``classifier.*``); text data; Matthews correlation or accuracy, or, for a decoder LLM's task given as a JSONL text
  file, the normalised mean-token-loss score (:mod:`spectral.eval.lm_loss`).
"""
from __future__ import annotations

import abc
import importlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from spectral.taskset import MatrixFilter

Split = Literal["train", "val", "test"]
Progress = Callable[[int, int, str], None]

log = logging.getLogger(__name__)

#: the metrics a task can be scored with (``metric(task)``); all are "higher is better", normalised scores divide
#: by the fine-tuned model's score as the papers do. ``"normalised"`` is a language-modelling task's token-loss score
#: (L_base − L_model) / (L_base − L_finetuned) (:mod:`spectral.eval.lm_loss`): 0 for the base, 1 for the fine-tune,
#: unbounded on both sides (not a proportion: no Wilson interval, no [0, 1] axis)
METRICS = ("accuracy", "mcc", "normalised")
#: metrics whose scores are proportions in [0, 1]
PROPORTION_METRICS = ("accuracy",)


class TaskScores(tuple):
    """``(scores, counts)`` of an evaluation — unpacks as that pair — plus ``bounds``: per-task 95 % interval
    bounds where the interval is not the binomial (Wilson) one of an accuracy, e.g. the bootstrap interval of a
    subsampled Matthews correlation; and ``losses``: the evaluated model's mean token loss on each
    language-modelling task (whose score is the normalised one, :mod:`spectral.eval.lm_loss`)."""

    bounds: dict[str, tuple[float, float]]
    losses: dict[str, float]

    def __new__(cls, scores: Mapping[str, float], counts: Mapping[str, int],
                bounds: Mapping[str, tuple[float, float]] | None = None,
                losses: Mapping[str, float] | None = None) -> "TaskScores":
        self = super().__new__(cls, (dict(scores), dict(counts)))
        self.bounds = dict(bounds or {})
        self.losses = dict(losses or {})
        return self


class ModelPool(abc.ABC):
    """Abstract pool of models: a shared body, per-task bodies, heads, data and metric. Implementations load
    lazily and may cache what they read. Subclass :class:`ImagePool` for CLIP image towers; language models
    live in :class:`spectral.checkpoints.hf_pool.HFPool`."""

    #: how the pool's models are evaluated: "clip" or "lm"
    family: ClassVar[str] = ""
    #: human-readable, unique name (used in cache keys and the results store), e.g. "zoo-8" or a YAML path
    name: str
    #: the model the body is built from (open_clip model name, or a Hugging Face ``model_type`` such as "gpt2")
    architecture: str
    #: task names in merge order
    task_names: list[str]

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @abc.abstractmethod
    def base_state_dict(self) -> dict[str, Tensor]:
        """Pre-trained body, canonical keys, on CPU (tensors may be memory-mapped)."""

    @abc.abstractmethod
    def finetuned_state_dict(self, task: str) -> dict[str, Tensor]:
        """Fine-tuned body of one task, same keys and shapes as :meth:`base_state_dict` (task heads excluded)."""

    @abc.abstractmethod
    def dataset(self, task: str, split: Split) -> Any:
        """The task's examples of ``split`` (its length is the number of examples)."""

    @abc.abstractmethod
    def task_scores(
        self,
        state_dict: Mapping[str, Tensor],
        *,
        tasks: Sequence[str] | None = None,
        split: str = "test",
        device: str | torch.device = "auto",
        batch_size: int = 1024,
        progress: Progress | None = None,
        subsample: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        image_cache: bool = True,
    ) -> tuple[dict[str, float], dict[str, int]]:
        """(score per task, number of examples it rests on) of a canonical body state dict, each task scored with
        its own head and :meth:`metric`, on ``split`` or a stratified ``subsample`` of it. Streamed. A family whose
        subsample intervals are not Wilson's returns a :class:`TaskScores` carrying them."""

    @abc.abstractmethod
    def head_fingerprint(self, task: str) -> str:
        """A content hash of the task's head (part of the pool's results-store key)."""

    @abc.abstractmethod
    def task_forward(self, base: Mapping[str, Tensor], device: torch.device, *, seed: int = 0,
                     logit_scale: float | None = None) -> Any:
        """The family's differentiable per-task forward for test-time adaptation
        (:class:`spectral.adapt.forward.TaskForward`), built over the base body ``base``."""

    def metric(self, task: str) -> str:
        """The metric the task is scored with (one of :data:`METRICS`)."""
        return "accuracy"

    def matrix_filters(self) -> dict[str, "MatrixFilter"]:
        """The rules for which body parameters are merged as matrices, by name: ``"default"`` (the papers' rule for
        this family) and ``"attn_mlp"`` (attention and MLP weights only, what AdaRank's code masks)."""
        from spectral.taskset import MATRIX_FILTERS

        return dict(MATRIX_FILTERS)

    def class_names(self, task: str) -> list[str]:
        """Class names of a task, when known (for tables and confusion plots)."""
        return [str(i) for i in range(self.num_classes(task))]

    def num_classes(self, task: str) -> int:
        """Number of classes of a task."""
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "family": self.family, "architecture": self.architecture,
                "tasks": list(self.task_names), "metrics": {t: self.metric(t) for t in self.task_names}}


class ImagePool(ModelPool):
    """The CLIP family: open_clip image towers (canonical ``visual.*`` keys), frozen zero-shot heads of class-name
    embeddings, image data sets, accuracy."""

    family: ClassVar[str] = "clip"

    @abc.abstractmethod
    def head(self, task: str) -> Tensor:
        """Classification head of one task: (num_classes, embed_dim), rows L2-normalised, logit scale applied
        by the evaluator (zero-shot heads from the text tower, frozen during fine-tuning)."""

    @abc.abstractmethod
    def dataset(self, task: str, split: Split) -> Dataset:
        """Preprocessed images and integer labels: items are ``(image: Tensor[3, H, W], label: int)``."""

    @abc.abstractmethod
    def build_image_encoder(self) -> nn.Module:
        """A fresh image tower (``open_clip`` VisionTransformer) whose ``state_dict()`` keys, prefixed with
        ``visual.``, are those of :meth:`base_state_dict`; weights unspecified until loaded."""

    def num_classes(self, task: str) -> int:
        return int(self.head(task).shape[0])

    def task_forward(self, base: Mapping[str, Tensor], device: torch.device, *, seed: int = 0,
                     logit_scale: float | None = None) -> Any:
        from spectral.adapt.forward import ImageForward

        return ImageForward(self, base, device, seed=seed, logit_scale=logit_scale)

    def head_fingerprint(self, task: str) -> str:
        from spectral.taskset import content_hash

        return content_hash(self.head(task))

    def task_scores(
        self,
        state_dict: Mapping[str, Tensor],
        *,
        tasks: Sequence[str] | None = None,
        split: str = "test",
        device: str | torch.device = "auto",
        batch_size: int = 1024,
        progress: Progress | None = None,
        subsample: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        image_cache: bool = True,
    ) -> tuple[dict[str, float], dict[str, int]]:
        """Accuracy per task of an image-tower state dict, images streamed (:mod:`spectral.eval.stream`)."""
        from spectral.eval.stream import streamed_accuracies

        return streamed_accuracies(self, state_dict, tasks=tasks, split=split, device=device, batch_size=batch_size,
                                   progress=progress, subsample=subsample, cache_dir=cache_dir,
                                   image_cache_on=image_cache)


def strip_visual_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Canonical ``visual.x`` keys → the VisionTransformer module's own ``x`` keys (for ``load_state_dict``)."""
    return {k[len("visual."):] if k.startswith("visual.") else k: v for k, v in state_dict.items()}


def add_visual_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A VisionTransformer's own keys → canonical ``visual.x`` keys."""
    return {k if k.startswith("visual.") else f"visual.{k}": v for k, v in state_dict.items()}


def load_image_encoder(pool: ImagePool, state_dict: dict[str, Tensor], device: torch.device | str = "cpu") -> nn.Module:
    """Build the pool's image tower and load a (merged) canonical state dict into it, strictly."""
    encoder = pool.build_image_encoder()
    encoder.load_state_dict(strip_visual_prefix(state_dict), strict=True)
    return encoder.to(device).eval()


# -- named pools (extensions, tests, Ray workers) ------------------------------------------------------------------
_POOL_FACTORIES: dict[str, Callable[[], ModelPool]] = {}
_POOL_LOCK = threading.Lock()


def register_pool(name: str, factory: Callable[[], ModelPool]) -> None:
    """Make ``name`` openable as a pool spec (for extensions and tests); ``factory()`` returns the pool."""
    with _POOL_LOCK:
        _POOL_FACTORIES[name] = factory


def registered_pools() -> list[str]:
    _load_env_factories()
    return sorted(_POOL_FACTORIES)


def registered_factory(name: str) -> Callable[[], ModelPool] | None:
    """The factory registered under ``name`` (also through ``$SPECTRAL_POOL_FACTORIES``), or None."""
    _load_env_factories()
    return _POOL_FACTORIES.get(name)


_ENV_LOADED: set[str] = set()


def _load_env_factories() -> None:
    """``SPECTRAL_POOL_FACTORIES="name=module:callable,…"`` registers pools by import path (set by whoever starts
    the server, e.g. the browser tests; never read from a page)."""
    raw = os.environ.get("SPECTRAL_POOL_FACTORIES", "")
    if not raw or raw in _ENV_LOADED:
        return
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, target = item.partition("=")
        module_name, _, attr = target.partition(":")
        if not (name and module_name and attr):
            log.warning("SPECTRAL_POOL_FACTORIES: ignoring %r (expected name=module:callable)", item)
            continue
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            log.warning("SPECTRAL_POOL_FACTORIES: cannot import %s (%s)", target, err)
            continue
        register_pool(name, factory)
    _ENV_LOADED.add(raw)
