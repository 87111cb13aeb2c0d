"""The merged model's per-task logits as a function of its parameters, for test-time adaptation, per pool family.

AdaRank (Lee et al. 2025, Eq. 6) and AdaMerging (Yang et al. 2024, Eq. 5) minimise the entropy of each task's
predictions with gradients flowing into the merged parameters. What a "prediction" is depends on the family:

- :class:`ImageForward` (CLIP): one image tower run over every task's images at once, each task's slice classified
  by its frozen zero-shot head (``logit_scale · normalise(features) @ headᵀ``).
- :class:`TextForward` (language models): each task's own model class (e.g. ``GPT2ForSequenceClassification``)
  with its own frozen head, the shared merged body swapped in through ``torch.func.functional_call``.

A pool hands out its family's forward through :meth:`spectral.pool.ModelPool.task_forward`; the adaptation loop
(:mod:`spectral.adapt.run`) only calls :meth:`TaskForward.logits`, :meth:`TaskForward.batch`,
:meth:`TaskForward.fixed` and :meth:`TaskForward.labelled`. Labels never reach the sampling path.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Sequence

import torch
from torch import Tensor
from torch.func import functional_call

from spectral.adapt.data import UnlabelledImages, classify, pool_logit_scale, selection_indices, step_indices


class TaskForward(Protocol):
    """What the adaptation loop needs of a pool family."""

    task_names: list[str]
    #: a number that identifies the forward's fixed settings in the run id (CLIP: the logit scale)
    identity: float

    def batch(self, task: int, step: int, batch_size: int) -> Any:
        """Unlabelled inputs of task ``task`` for optimisation step ``step`` (a function of (seed, task, step))."""

    def fixed(self, task: int, n: int) -> Any:
        """A fixed unlabelled subset of ``n`` inputs of the task, for the entropy-based selection."""

    def logits(self, params: Mapping[str, Tensor], batches: Sequence[Any]) -> list[Tensor]:
        """Each task's logits (N_t, C_t) of the model with body ``params`` (canonical keys) on its batch."""

    def task_logits(self, params: Mapping[str, Tensor], task: int, inputs: Any) -> Tensor:
        """One task's logits on ``inputs``."""

    def labelled(self, task: int, limit: int | None, batch_size: int = 256) -> Iterator[tuple[Any, Tensor]]:
        """(inputs, labels) of the task's test split (a prefix of ``limit`` examples): display traces only."""


class ImageForward:
    """CLIP image tower + frozen zero-shot heads (the task-vector code's classifier)."""

    def __init__(self, pool: Any, base: Mapping[str, Tensor], device: torch.device, *, seed: int = 0,
                 logit_scale: float | None = None) -> None:
        from spectral.pool import load_image_encoder

        self.task_names = list(pool.task_names)
        self.device = device
        self.logit_scale = float(logit_scale) if logit_scale is not None else pool_logit_scale(pool)
        self.identity = self.logit_scale
        encoder = load_image_encoder(pool, dict(base), device=device)
        for p in encoder.parameters():
            p.requires_grad_(False)
        self.encoder = encoder
        self.pool = pool
        # copies: a pool may have loaded its heads under torch.inference_mode (e.g. during an evaluation)
        self.heads = [pool.head(t).to(device, torch.float32).clone() for t in self.task_names]
        self.data = [UnlabelledImages(pool.dataset(t, "test"), t, seed=seed) for t in self.task_names]

    def batch(self, task: int, step: int, batch_size: int) -> Tensor:
        return self.data[task].batch(step, batch_size)

    def fixed(self, task: int, n: int) -> Tensor:
        return self.data[task].fixed(n)

    def _features(self, params: Mapping[str, Tensor], images: Tensor) -> Tensor:
        module_params = {k[len("visual."):] if k.startswith("visual.") else k: v for k, v in params.items()}
        return functional_call(self.encoder, module_params, (images.to(self.device, torch.float32),))

    def logits(self, params: Mapping[str, Tensor], batches: Sequence[Tensor]) -> list[Tensor]:
        # one forward pass over every task's images at once: the tower is shared
        features = self._features(params, torch.cat(list(batches)))
        out, start = [], 0
        for t, batch in enumerate(batches):
            out.append(classify(features[start : start + len(batch)], self.heads[t], self.logit_scale))
            start += len(batch)
        return out

    def task_logits(self, params: Mapping[str, Tensor], task: int, inputs: Tensor) -> Tensor:
        return classify(self._features(params, inputs), self.heads[task], self.logit_scale)

    def labelled(self, task: int, limit: int | None, batch_size: int = 256) -> Iterator[tuple[Tensor, Tensor]]:
        dataset = self.pool.dataset(self.task_names[task], "test")
        n = len(dataset) if limit is None else min(limit, len(dataset))
        for start in range(0, n, batch_size):
            items = [dataset[i] for i in range(start, min(n, start + batch_size))]
            yield torch.stack([torch.as_tensor(x[0]) for x in items]), torch.tensor([int(x[1]) for x in items])


class UnlabelledText:
    """The test examples of one text task without their labels, sampled as :class:`UnlabelledImages` samples
    images (batches a function of (seed, task, step)); items are tokenised on the fly."""

    def __init__(self, split: Any, task: str, *, seed: int = 0) -> None:
        self.split = split
        self.task = task
        self.seed = seed
        self.size = len(split)
        if self.size == 0:
            raise ValueError(f"task {task!r}: the test split is empty; test-time adaptation needs examples")

    def examples(self, indices: Sequence[int]) -> tuple[list[str], list[str] | None]:
        a = [self.split.text_a[int(i)] for i in indices]
        b = [self.split.text_b[int(i)] for i in indices] if self.split.text_b is not None else None
        return a, b  # the labels are never read

    def batch(self, step: int, batch_size: int) -> tuple[list[str], list[str] | None]:
        return self.examples(step_indices(self.seed, self.task, step, self.size, batch_size).tolist())

    def fixed(self, n: int) -> tuple[list[str], list[str] | None]:
        return self.examples(selection_indices(self.seed, self.task, self.size, n).tolist())


class TextForward:
    """Each task's sequence-classification model (its own head, frozen) over the shared merged body.

    ``pool`` provides ``task_model(task, body, device)``, ``tokenizer(task)``, ``dataset(task, split)`` and
    ``module_parameters(task_model, params)`` (canonical body tensors → the module's own parameter names and
    stored orientation, differentiably: GPT-2's Conv1D weights are transposed back)."""

    def __init__(self, pool: Any, base: Mapping[str, Tensor], device: torch.device, *, seed: int = 0) -> None:
        self.pool = pool
        self.task_names = list(pool.task_names)
        self.device = device
        self.identity = 1.0
        self.models = []
        for t in self.task_names:
            model = pool.task_model(t, base, device)
            for p in model.parameters():
                p.requires_grad_(False)
            self.models.append(model)
        self.tokenizers = [pool.tokenizer(t) for t in self.task_names]
        self.data = [UnlabelledText(pool.dataset(t, "test"), t, seed=seed) for t in self.task_names]

    def batch(self, task: int, step: int, batch_size: int) -> tuple[list[str], list[str] | None]:
        return self.data[task].batch(step, batch_size)

    def fixed(self, task: int, n: int) -> tuple[list[str], list[str] | None]:
        return self.data[task].fixed(n)

    def _encode(self, task: int, texts: tuple[list[str], list[str] | None]) -> dict[str, Tensor]:
        from spectral.eval.text import encode_batch

        batch = encode_batch(self.models[task], self.tokenizers[task], texts[0], texts[1])
        return {k: v.to(self.device) for k, v in batch.items()}

    def logits(self, params: Mapping[str, Tensor], batches: Sequence[Any]) -> list[Tensor]:
        return [self.task_logits(params, t, texts) for t, texts in enumerate(batches)]

    def task_logits(self, params: Mapping[str, Tensor], task: int, inputs: Any) -> Tensor:
        model = self.models[task]
        module_params = self.pool.module_parameters(model, params)
        return functional_call(model, module_params, args=(), kwargs=self._encode(task, inputs),
                               strict=False).logits.float()

    def labelled(self, task: int, limit: int | None, batch_size: int = 64) -> Iterator[tuple[Any, Tensor]]:
        split = self.pool.dataset(self.task_names[task], "test")
        n = len(split) if limit is None else min(limit, len(split))
        unl = self.data[task]
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            yield unl.examples(idx), torch.tensor([int(split.labels[i]) for i in idx])
