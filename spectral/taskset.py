"""TaskSet: a base state dict and T fine-tuned ones, seen as per-parameter task vectors Δ_t = θ_t − θ₀.

Tensors are read per key and only when needed, so state dicts may be lazy mappings (memory-mapped safetensors)
and a ViT-L/14 × 20 pool never has to sit in RAM at once.
"""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Callable, Iterator, Mapping

import torch
import xxhash
from torch import Tensor

from spectral.errors import (
    DtypeMismatchError,
    EmptyTaskSetError,
    MissingKeyError,
    NonFiniteError,
    ShapeMismatchError,
)
from spectral.heap import release_mapped_pages_often
from spectral.lora import LowRankDelta

log = logging.getLogger(__name__)

MatrixFilter = Callable[[str, Tensor], bool]

_NOT_MATRICES = ("text_projection", "token_embedding")


def default_matrix_filter(key: str, tensor: Tensor) -> bool:
    """2-D weights of the image tower: attention in_proj/out_proj, MLP c_fc/c_proj, positional_embedding and proj,
    as in the TSV and Iso code (docs/contributing.md, "Math conventions"). text_projection and everything not 2-D (conv1, LayerNorms, biases,
    class_embedding, logit_scale) are merged as plain vectors."""
    return tensor.ndim == 2 and not any(part in key for part in _NOT_MATRICES)


_ATTN_MLP = re.compile(r"(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$")


def attn_mlp_filter(key: str, tensor: Tensor) -> bool:
    """Only the attention and MLP weight matrices (what AdaRank's code masks)."""
    return tensor.ndim == 2 and bool(_ATTN_MLP.search(key))


MATRIX_FILTERS: dict[str, MatrixFilter] = {"default": default_matrix_filter, "attn_mlp": attn_mlp_filter}


# Short names of the matrices of each family's block, most specific first: open_clip's image tower, GPT-2
# (Conv1D names), BERT/RoBERTa, and the Llama-like decoders.
_KINDS: tuple[tuple[str, str], ...] = (
    ("attn.in_proj", "in_proj"), ("attn.out_proj", "out_proj"), ("attn.c_attn", "c_attn"),
    ("attn.c_proj", "attn.c_proj"), ("mlp.c_fc", "c_fc"), ("mlp.c_proj", "c_proj"),
    ("attention.self.query", "query"), ("attention.self.key", "key"), ("attention.self.value", "value"),
    ("attention.output.dense", "attn_out"), ("intermediate.dense", "fc_in"), ("output.dense", "fc_out"),
    ("self_attn.q_proj", "q_proj"), ("self_attn.k_proj", "k_proj"), ("self_attn.v_proj", "v_proj"),
    ("self_attn.o_proj", "o_proj"), ("mlp.gate_proj", "gate_proj"), ("mlp.up_proj", "up_proj"),
    ("mlp.down_proj", "down_proj"),
)
_BLOCK = re.compile(r"(?:^|\.)(?:resblocks|h|layer|layers|blocks)\.(\d+)\.")


def layer_kind(key: str) -> str:
    """Short kind of a parameter for plots: 'in_proj', 'out_proj', 'c_fc', 'c_proj' for CLIP; 'c_attn',
    'attn.c_proj' for GPT-2; 'query', …, 'fc_out' for BERT/RoBERTa; 'q_proj', …, 'down_proj' for Llama-like
    decoders; otherwise the module name before ``.weight`` (``wte``, ``word_embeddings``) or the last name part."""
    for part, kind in _KINDS:
        if part in key:
            return kind
    parts = key.split(".")
    if len(parts) > 1 and parts[-1] in ("weight", "bias"):
        return parts[-2]
    return parts[-1]


def block_index(key: str) -> int | None:
    """Transformer block number of a key (``...resblocks.7...``, ``h.7.``, ``layer.7.``, ``layers.7.`` → 7),
    None outside the blocks."""
    match = _BLOCK.search(key)
    return int(match.group(1)) if match else None


def _delta_dtype(finetuned: Tensor) -> torch.dtype:
    """Task matrices are float32, except where the checkpoint itself is float64."""
    return torch.float64 if finetuned.dtype == torch.float64 else torch.float32


class TaskSet:
    """Base weights and T fine-tuned models of one architecture, validated up front.

    ``base`` and every ``finetuned[task]`` map parameter names to tensors (possibly lazily). Floating-point
    parameters present in the base must be present, with the same shape and dtype, in every fine-tuned model;
    integer buffers are carried over from the base unchanged. Fine-tuned keys absent from the base are an error.
    """

    def __init__(
        self,
        base: Mapping[str, Tensor],
        finetuned: Mapping[str, Mapping[str, Tensor]],
        *,
        matrix_filter: MatrixFilter | str = "default",
        name: str = "",
        validate: bool = True,
    ) -> None:
        if len(finetuned) == 0:
            raise EmptyTaskSetError("a TaskSet needs at least one fine-tuned model (T = 0 given)")
        self.name = name
        self.base = base
        self.finetuned = finetuned
        self.task_names: list[str] = list(finetuned)
        self.matrix_filter: MatrixFilter = (
            MATRIX_FILTERS[matrix_filter] if isinstance(matrix_filter, str) else matrix_filter
        )
        self.keys: list[str] = [k for k, v in base.items() if torch.is_floating_point(v)]
        #: tasks whose fine-tuned state hands out its update as low-rank factors (LoRA adapters, spectral.lora)
        self.low_rank_tasks: list[int] = [
            t for t, state in enumerate(finetuned.values()) if callable(getattr(state, "low_rank_delta", None))]
        if self.low_rank_tasks and len(self.low_rank_tasks) == len(self.task_names):
            # a pool of adapters only: its task vectors live on the adapted weights; every other tensor has Δ = 0
            # for every task, so every method leaves it as the base has it (merges copy it unchanged)
            adapted: set[str] = set()
            for state in finetuned.values():
                adapted.update(state.adapted_keys())  # type: ignore[attr-defined]
            self.keys = [k for k in self.keys if k in adapted]
        self.matrix_keys: list[str] = [k for k in self.keys if self.matrix_filter(k, base[k])]
        matrix_set = set(self.matrix_keys)
        self.other_keys: list[str] = [k for k in self.keys if k not in matrix_set]
        self._hashes: dict[tuple[int, str], str] = {}
        #: named matrix rules of the pool's family ("default", "attn_mlp"); CLIP's unless from_pool says otherwise
        self.filters: dict[str, MatrixFilter] = dict(MATRIX_FILTERS)
        if validate:
            self.validate()

    @classmethod
    def from_pool(cls, pool: object, **kwargs: object) -> "TaskSet":
        """TaskSet of a :class:`spectral.pool.ModelPool` (base and fine-tuned bodies). A ``matrix_filter`` given
        by name is the pool's rule of that name (:meth:`ModelPool.matrix_filters`), so "default" means the papers'
        rule for the pool's family."""
        filters = getattr(pool, "matrix_filters", None)
        chosen = kwargs.get("matrix_filter", "default")
        if isinstance(chosen, str) and callable(filters):
            rules = filters()
            if chosen not in rules:
                raise ValueError(f"unknown matrix filter {chosen!r} for this pool; choose from {sorted(rules)}")
            kwargs["matrix_filter"] = rules[chosen]
        base = pool.base_state_dict()  # type: ignore[attr-defined]
        finetuned = {t: pool.finetuned_state_dict(t) for t in pool.task_names}  # type: ignore[attr-defined]
        kwargs.setdefault("name", getattr(pool, "name", ""))
        taskset = cls(base, finetuned, **kwargs)  # type: ignore[arg-type]
        if callable(filters):
            taskset.filters = filters()  # the pool family's named rules (e.g. AdaRank's "attn_mlp" mask)
        return taskset

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def validate(self) -> None:
        """Raise a named error for missing keys, shape or dtype mismatches and non-finite values."""
        base_keys = set(self.base)
        for key in self.keys:
            if not torch.isfinite(self.base[key]).all():
                raise NonFiniteError(f"base model: parameter {key!r} contains NaN or Inf")
            release_mapped_pages_often()
        low_rank = set(self.low_rank_tasks)
        for t, (task, state) in enumerate(self.finetuned.items()):
            if t in low_rank:
                self._validate_low_rank(t)
                continue
            extra = sorted(set(state) - base_keys)
            if extra:
                raise MissingKeyError(
                    f"task {task!r}: {len(extra)} parameter(s) not in the base model, e.g. {extra[:3]}"
                )
            for key in self.keys:
                if key not in state:
                    raise MissingKeyError(f"task {task!r}: parameter {key!r} of the base model is missing")
                tensor, ref = state[key], self.base[key]
                if tuple(tensor.shape) != tuple(ref.shape):
                    raise ShapeMismatchError(
                        f"task {task!r}: parameter {key!r} has shape {tuple(tensor.shape)}, "
                        f"the base model has {tuple(ref.shape)}"
                    )
                if tensor.dtype != ref.dtype:
                    raise DtypeMismatchError(
                        f"task {task!r}: parameter {key!r} is {tensor.dtype}, the base model's is {ref.dtype}; "
                        "convert the checkpoints to one dtype"
                    )
                if not torch.isfinite(tensor).all():
                    raise NonFiniteError(f"task {task!r}: parameter {key!r} contains NaN or Inf")
                release_mapped_pages_often()

    def _validate_low_rank(self, t: int) -> None:
        """A low-rank task: every factor's product has the base's shape and finite values (its keys are the base's
        by construction)."""
        task = self.task_names[t]
        for key in self.keys:
            delta = self.task_low_rank(t, key)
            if delta is None:
                continue
            if tuple(delta.shape) != tuple(self.base[key].shape):
                raise ShapeMismatchError(
                    f"task {task!r}: the update of {key!r} has shape {delta.shape} (B {tuple(delta.B.shape)}, "
                    f"A {tuple(delta.A.shape)}), the base model has {tuple(self.base[key].shape)}"
                )
            if not (torch.isfinite(delta.B).all() and torch.isfinite(delta.A).all()):
                raise NonFiniteError(f"task {task!r}: the low-rank factors of {key!r} contain NaN or Inf")
            release_mapped_pages_often()

    def task_low_rank(self, task: str | int, key: str) -> LowRankDelta | None:
        """Δ_t of ``key`` as low-rank factors (s·B·A) when the task is a LoRA adapter — rank 0 for a weight it does
        not adapt — else None (a full fine-tune, or a parameter that is not 2-D)."""
        t = self.task_index(task)
        get = getattr(self.finetuned[self.task_names[t]], "low_rank_delta", None)
        return get(key) if callable(get) else None

    def task_index(self, task: str | int) -> int:
        if isinstance(task, int):
            if not 0 <= task < self.num_tasks:
                raise IndexError(f"task index {task} out of range for {self.num_tasks} tasks")
            return task
        try:
            return self.task_names.index(task)
        except ValueError:
            raise MissingKeyError(f"no task named {task!r}; tasks are {self.task_names}") from None

    def task_matrix(self, task: str | int, key: str) -> Tensor:
        """Δ_t for one task and key, in float32 (float64 checkpoints stay float64). A low-rank task's Δ_t is formed
        from its factors (s·B·A in float32), one parameter at a time."""
        low_rank = self.task_low_rank(task, key)
        if low_rank is not None:
            return low_rank.dense()
        ft = self.finetuned[self.task_names[self.task_index(task)]][key]
        return ft.to(_delta_dtype(ft)) - self.base[key]

    def task_matrix_dtype(self, task: str | int, key: str) -> torch.dtype:
        """The dtype :meth:`task_matrix` returns for (task, key), without computing it."""
        if self.task_index(task) in self.low_rank_tasks and self.task_low_rank(task, key) is not None:
            return torch.float32
        return _delta_dtype(self.finetuned[self.task_names[self.task_index(task)]][key])

    def task_matrix_into(self, task: str | int, key: str, out: Tensor, *, base: Tensor | None = None) -> Tensor:
        """:meth:`task_matrix` written into ``out`` (same values, no temporary): for filling batch buffers.

        ``out`` may live on another device (θ_t is copied there); ``base`` is then θ₀ of ``key`` already on that
        device, so that the subtraction runs there too. Subtraction is exactly rounded, so the result is the same.
        """
        t = self.task_index(task)
        low_rank = self.task_low_rank(t, key)
        if low_rank is not None:
            return out.copy_(low_rank.dense(device=out.device, dtype=out.dtype))
        out.copy_(self.finetuned[self.task_names[t]][key])
        return out.sub_(self.base[key] if base is None else base)

    def task_matrices(self, key: str) -> Tensor:
        """Stacked (T, ...) task vectors of one parameter."""
        if key not in self.base:
            raise MissingKeyError(f"parameter {key!r} is not in the base model")
        return torch.stack([self.task_matrix(t, key) for t in range(self.num_tasks)])

    def iter_task_vectors(self) -> Iterator[tuple[str, Tensor]]:
        """(key, stacked Δ) for every floating-point parameter, one at a time."""
        for key in self.keys:
            yield key, self.task_matrices(key)

    def lazy_task_vectors(self) -> Mapping[str, Tensor]:
        """A read-only mapping key → stacked Δ that computes each entry on access (for whole-model methods)."""
        return _LazyTaskVectors(self)

    def matrix_hash(self, task: str | int, key: str) -> str:
        """Content key of Δ_t for ``key``: the SVD cache key.

        Δ_t = θ_t − θ₀ is determined exactly by the contents of the two tensors, so the key combines their content
        hashes; hashing them directly avoids materialising every Δ (a 2.7 GB allocation for ViT-B/32 × 8) just to
        look factors up on a warm start.
        """
        t = self.task_index(task)
        if (t, key) not in self._hashes and t in self.low_rank_tasks:
            low_rank = self.task_low_rank(t, key)
            if low_rank is not None:  # the factors determine Δ_t: hash them, never the dense product
                parts = [content_hash(low_rank.B), content_hash(low_rank.A), repr(float(low_rank.scale))]
                self._hashes[(t, key)] = combine_hashes("lowrank", parts)
        if (t, key) not in self._hashes:
            if (-1, key) not in self._hashes:
                self._hashes[(-1, key)] = content_hash(self.base[key])
            finetuned = content_hash(self.finetuned[self.task_names[t]][key])
            self._hashes[(t, key)] = combine_hashes("delta", [finetuned, self._hashes[(-1, key)]])
        return self._hashes[(t, key)]


class _LazyTaskVectors(Mapping[str, Tensor]):
    def __init__(self, taskset: TaskSet) -> None:
        self._ts = taskset

    def __getitem__(self, key: str) -> Tensor:
        return self._ts.task_matrices(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ts.keys)

    def __len__(self) -> int:
        return len(self._ts.keys)


def content_hash(tensor: Tensor) -> str:
    """128-bit XXH3 over dtype, shape and raw bytes of a tensor (contiguous CPU copy if needed).

    A non-cryptographic hash is enough for a local cache key and runs at memory speed (≈ 25 GB/s here against
    ≈ 1.8 GB/s for SHA-256), which is what makes a warm start from cache/ cheap: every task matrix is hashed.
    """
    t = tensor.detach().contiguous().cpu()
    h = xxhash.xxh3_128()
    h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        h.update(memoryview(t.view(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def combine_hashes(tag: str, hashes: list[str]) -> str:
    """Key of a factorisation derived from several task matrices (e.g. the SVD of their sum)."""
    return hashlib.sha256((tag + ":" + ",".join(hashes)).encode()).hexdigest()
