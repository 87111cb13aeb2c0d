"""Stand-ins for the classes that the papers' pickled checkpoints name.

The task_vectors repository (Ilharco et al. 2023) saves whole ``src.modeling.ImageEncoder`` objects, whose
``model`` is an open_clip ``CLIP`` of the open_clip release of the time (with class names such as
``open_clip.model.VisualTransformer`` that no longer exist), plus the torchvision transforms it was built with.
The tall_masks repository (Wang et al. 2024) pickles ``src.models.modeling.ClassificationHead`` objects.
Unpickling those needs the original code; these shims replace it. The restricted unpickler in
:mod:`spectral.checkpoints.safe_pickle` maps every such name onto a class defined here, so loading never imports
``src`` or an old open_clip, and only ``state_dict()`` / the head's weight are ever read from the result.

:func:`installed` puts the shims in ``sys.modules`` under the reference names for the duration of a ``with``
block: that is how tests (and users converting checkpoints) *write* a pickle that looks like the papers' files.
"""
from __future__ import annotations

import contextlib
import sys
import types
from typing import Any, Iterator

import torch
from torch import Tensor, nn

__all__ = [
    "ClassificationHead",
    "ImageClassifier",
    "ImageEncoder",
    "LegacyModule",
    "MultiHeadImageClassifier",
    "Placeholder",
    "TallMasksClassificationHead",
    "TallMasksImageClassifier",
    "TallMasksImageEncoder",
    "installed",
    "placeholder_function",
]


class LegacyModule(nn.Module):
    """Any ``nn.Module`` subclass of an old open_clip (``VisualTransformer``, ``ResidualAttentionBlock``,
    ``LayerNorm``, ``QuickGELU``, ...). Unpickling restores its ``__dict__`` (parameters, buffers, children),
    which is all ``state_dict()`` needs; it cannot run."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called by spectral
        raise NotImplementedError(
            "a module restored from a legacy pickle only carries weights; load its state_dict() into a "
            "current open_clip model to run it"
        )


class Placeholder:
    """Anything else the pickle carries that spectral never uses (torchvision transforms, interpolation enums,
    open_clip's transform helpers). Accepts any constructor arguments and any state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # transforms are callables; never used by spectral
        raise NotImplementedError("placeholder restored from a legacy pickle")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from a legacy pickle>"


def placeholder_function(*args: Any, **kwargs: Any) -> Any:
    """Stands for a plain function referenced by a pickle (e.g. ``open_clip.transform._convert_to_rgb``)."""
    raise NotImplementedError("function restored from a legacy pickle")


class ImageEncoder(nn.Module):
    """``src.modeling.ImageEncoder`` of the task_vectors code: ``self.model`` is an open_clip CLIP (text
    transformer deleted), ``train_preprocess`` / ``val_preprocess`` are torchvision transforms."""

    def __init__(self, model: nn.Module | None = None, keep_lang: bool = False) -> None:
        super().__init__()
        self.model = model
        self.train_preprocess: Any = None
        self.val_preprocess: Any = None
        self.cache_dir: Any = None
        if model is not None and not keep_lang and hasattr(model, "transformer"):
            delattr(model, "transformer")

    def forward(self, images: Tensor) -> Tensor:  # pragma: no cover - only for converted real models
        return self.model.encode_image(images)  # type: ignore[union-attr]


class ClassificationHead(nn.Linear):
    """``src.modeling.ClassificationHead``: a Linear layer whose weight is the zero-shot head scaled by the
    CLIP logit scale (≈100), with ``normalize=True`` meaning inputs are L2-normalised first."""

    def __init__(self, normalize: bool, weights: Tensor, biases: Tensor | None = None) -> None:
        out_features, in_features = weights.shape
        super().__init__(in_features, out_features)
        self.normalize = normalize
        self.weight = nn.Parameter(weights.clone())
        self.bias = nn.Parameter(biases.clone() if biases is not None else torch.zeros(out_features))

    def forward(self, inputs: Tensor) -> Tensor:
        if self.normalize:
            inputs = inputs / inputs.norm(dim=-1, keepdim=True)
        return super().forward(inputs)


class ImageClassifier(nn.Module):
    """``src.modeling.ImageClassifier``: an image encoder and a classification head."""

    def __init__(self, image_encoder: nn.Module | None = None, classification_head: nn.Module | None = None) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.classification_head = classification_head


class MultiHeadImageClassifier(nn.Module):
    """``src.modeling.MultiHeadImageClassifier``: an image encoder and a list of heads."""

    def __init__(self, image_encoder: nn.Module | None = None, classification_heads: list[nn.Module] | None = None):
        super().__init__()
        self.image_encoder = image_encoder
        self.classification_heads = nn.ModuleList(classification_heads or [])


# The tall_masks repository keeps the same classes under src.models.modeling.
class TallMasksImageEncoder(ImageEncoder):
    """``src.models.modeling.ImageEncoder`` (tall_masks)."""


class TallMasksClassificationHead(ClassificationHead):
    """``src.models.modeling.ClassificationHead`` (tall_masks)."""


class TallMasksImageClassifier(ImageClassifier):
    """``src.models.modeling.ImageClassifier`` (tall_masks)."""


#: reference module → {reference class name: shim class}
REFERENCE_CLASSES: dict[str, dict[str, type]] = {
    "src.modeling": {
        "ImageEncoder": ImageEncoder,
        "ClassificationHead": ClassificationHead,
        "ImageClassifier": ImageClassifier,
        "MultiHeadImageClassifier": MultiHeadImageClassifier,
    },
    "src.models.modeling": {
        "ImageEncoder": TallMasksImageEncoder,
        "ClassificationHead": TallMasksClassificationHead,
        "ImageClassifier": TallMasksImageClassifier,
        "MultiHeadImageClassifier": MultiHeadImageClassifier,
    },
}
# some forks save from inside src/ (module "modeling") or from a package named "task_vectors.src.modeling"
REFERENCE_CLASSES["modeling"] = REFERENCE_CLASSES["src.modeling"]
REFERENCE_CLASSES["task_vectors.src.modeling"] = REFERENCE_CLASSES["src.modeling"]
REFERENCE_CLASSES["models.modeling"] = REFERENCE_CLASSES["src.models.modeling"]


@contextlib.contextmanager
def installed(*, legacy_open_clip: bool = False) -> Iterator[dict[str, types.ModuleType]]:
    """Register the shims under their reference names (``src.modeling.ImageEncoder``, ...) while the block runs,
    so ``torch.save`` writes pickles that name them exactly as the papers' files do.

    With ``legacy_open_clip=True`` a ``VisualTransformer`` class (open_clip's name for the image tower before
    2.0) is added to ``open_clip.model`` for the block; assign it to a model's ``visual.__class__`` to write an
    old-style pickle. Everything is removed again on exit.
    """
    saved_classes: dict[type, tuple[str, str]] = {}
    added: dict[str, types.ModuleType] = {}
    previous: dict[str, types.ModuleType | None] = {}

    def module(name: str) -> types.ModuleType:
        if name not in added:
            previous[name] = sys.modules.get(name)
            added[name] = types.ModuleType(name)
            sys.modules[name] = added[name]
        return added[name]

    for mod_name in ("src.modeling", "src.models.modeling"):
        parts = mod_name.split(".")
        for i in range(1, len(parts) + 1):
            module(".".join(parts[:i]))
        for i in range(1, len(parts)):
            setattr(added[".".join(parts[:i])], parts[i], added[".".join(parts[: i + 1])])
        for cls_name, cls in REFERENCE_CLASSES[mod_name].items():
            if cls not in saved_classes:
                saved_classes[cls] = (cls.__module__, cls.__qualname__)
            setattr(added[mod_name], cls_name, cls)
    # pickle looks classes up by __module__ / __qualname__: point them at the reference names for the block
    for mod_name in ("src.modeling", "src.models.modeling"):
        for cls_name, cls in REFERENCE_CLASSES[mod_name].items():
            if cls is MultiHeadImageClassifier and mod_name == "src.models.modeling":
                continue
            cls.__module__, cls.__qualname__ = mod_name, cls_name

    legacy_cls: type | None = None
    had_attr = False
    if legacy_open_clip:
        import open_clip.model
        import open_clip.transformer

        had_attr = hasattr(open_clip.model, "VisualTransformer")
        legacy_cls = type("VisualTransformer", (open_clip.transformer.VisionTransformer,), {})
        legacy_cls.__module__ = "open_clip.model"
        open_clip.model.VisualTransformer = legacy_cls  # type: ignore[attr-defined]
        added["open_clip.model.VisualTransformer"] = legacy_cls  # type: ignore[assignment]
    try:
        yield added
    finally:
        for cls, (mod, qual) in saved_classes.items():
            cls.__module__, cls.__qualname__ = mod, qual
        for name, prev in previous.items():
            if prev is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = prev
        if legacy_cls is not None and not had_attr:
            import open_clip.model

            delattr(open_clip.model, "VisualTransformer")
