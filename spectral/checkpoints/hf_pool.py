"""A pool of Hugging Face language models: one base folder, one fine-tuned task model folder per task.

The body every method merges is the canonical body of :mod:`spectral.checkpoints.hf` (prefix stripped, out × in);
each task keeps its own head (``score.*`` / ``classifier.*``), its data (GLUE, :mod:`spectral.data.glue`) and its
metric (Matthews correlation for CoLA, accuracy otherwise, as AdaRank §6.3 and FusionBench report them).

The base is often the bare body (``GPT2Model``, ``RobertaModel``) while each fine-tune is a task class: keys line up
by the base-model prefix. A tensor only the base has (RoBERTa's ``pooler.*``, a causal LM's ``lm_head.weight`` when
every fine-tune is a sequence classifier, stored GPT-2 ``attn.bias`` buffers) is not part of the merged body: it is
left as the base has it and written out unchanged by :func:`~spectral.checkpoints.hf.write_hf_folder`.

Pool YAML (paths relative to the file)::

    base: gpt2/
    tasks:
      - {name: cola, checkpoint: gpt2_cola/, dataset: CoLA, data: glue/CoLA}

Discovery (:func:`discover_hf_pool`): a folder holding model folders ``<base>`` and ``<base>_<task>``
(FusionBench's naming: ``gpt2``, ``gpt2_cola``, ``gpt2_sst2``, ...), data from ``<folder>/glue`` or ``data_root``.

**Language-modelling tasks** (decoder LLMs without a benchmark harness, issue 25): a task whose ``data`` is a JSONL
file (``{"text": ...}`` or ``{"prompt": ..., "completion": ...}`` lines) is scored by mean token loss in the
fine-tune's own causal-LM class (``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ``GPT2LMHeadModel``, ...; no head),
reported as the normalised score (L_base − L_model) / (L_base − L_finetuned), metric ``"normalised"``
(:mod:`spectral.eval.lm_loss`). Its ``val`` split is the file ``<stem>.val.jsonl`` beside it. ::

    base: qwen/
    tasks:
      - {name: math, checkpoint: qwen_math/, data: math.jsonl}

Discovery finds such files as ``<data_root>/<task>.jsonl`` (default ``data_root``: the pool folder itself).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from spectral.checkpoints import hf
from spectral.checkpoints.errors import ArchitectureMismatchError, CheckpointError, MissingTaskError, PoolConfigError
from spectral.checkpoints.pool import PoolSpec, TaskSpec
from spectral.errors import SpectralError
from spectral.pool import ModelPool, Progress, TaskScores

log = logging.getLogger(__name__)

__all__ = ["HFPool", "NotAnImagePoolError", "discover_hf_pool", "glue_name", "is_hf_pool_dir"]

#: GLUE tasks in the papers' order, with the aliases FusionBench's folder names use
_GLUE: dict[str, str] = {"cola": "CoLA", "sst2": "SST-2", "sst-2": "SST-2", "mrpc": "MRPC", "qqp": "QQP",
                         "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}
_GLUE_ORDER = ("CoLA", "SST-2", "MRPC", "QQP", "MNLI", "QNLI", "RTE")
#: class-name endings of the causal language models a text-file task is scored with
_CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                    "spiece.model")


def is_text_file(path: str | os.PathLike[str] | None) -> bool:
    """Whether a task's ``data`` is a JSONL text file (see :func:`spectral.eval.lm_loss.is_text_file`)."""
    from spectral.eval.lm_loss import is_text_file as check

    return check(path)


class NotAnImagePoolError(SpectralError, TypeError):
    """An image-pool method (zero-shot head, image tower) was asked of a language-model pool."""


def glue_name(task: str) -> str | None:
    """``"cola"`` / ``"CoLA"`` / ``"sst2"`` → the GLUE data set's name, None for other tasks."""
    return _GLUE.get(task.lower().replace("_", "-")) or _GLUE.get(task.lower().replace("-", "").replace("_", ""))


def _task_order(names: list[str]) -> list[str]:
    def key(n: str) -> tuple[int, int, str]:
        g = glue_name(n)
        return (0, _GLUE_ORDER.index(g), n) if g else (1, 0, n.lower())

    return sorted(names, key=key)


# --- discovery ---------------------------------------------------------------------------------------------------

def _families(root: Path) -> dict[str, list[str]]:
    """base folder name → task names, for the ``<base>`` / ``<base>_<task>`` model folders directly under root."""
    models = sorted(c.name for c in root.iterdir() if hf.is_language_folder(c))
    out: dict[str, list[str]] = {}
    for base in models:
        tasks = [m[len(base) + 1:] for m in models if m.startswith(base + "_") and len(m) > len(base) + 1]
        if tasks:
            out[base] = tasks
    # a longer base that is itself a task folder of a shorter one (gpt2_cola with gpt2_cola_v2) is not a base
    return {b: t for b, t in out.items() if not any(b.startswith(o + "_") for o in out if o != b)}


def is_hf_pool_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds Hugging Face model folders named ``<base>`` and ``<base>_<task>``."""
    p = Path(path)
    return p.is_dir() and not hf.is_hf_folder(p) and bool(_families(p))


def _data_dir(data_root: Path | None, task: str) -> Path | None:
    if data_root is None:
        return None
    names = [glue_name(task) or task, task, task.lower()]
    for n in names:
        if (data_root / n).is_dir():
            return data_root / n
    for n in names:  # a language-modelling task's text file
        if (data_root / f"{n}.jsonl").is_file():
            return data_root / f"{n}.jsonl"
    return None


def discover_hf_pool(directory: str | os.PathLike[str], *, model: str | None = None,
                     data_root: str | os.PathLike[str] | None = None) -> PoolSpec:
    """A :class:`PoolSpec` of the model folders ``<base>``, ``<base>_<task>`` under ``directory``.

    ``model`` picks the base when several families are present; data folders are looked up under ``data_root``
    (default ``<directory>/glue`` when it exists) by GLUE name (``CoLA``) or task name (``cola``)."""
    root = Path(directory)
    families = _families(root) if root.is_dir() else {}
    if model is not None:
        families = {b: t for b, t in families.items() if b == model}
    if not families:
        raise PoolConfigError(
            f"{root}: no Hugging Face pool found" + (f" for base {model!r}" if model else "")
            + " (expected model folders <base>/ and <base>_<task>/, each with config.json)"
        )
    if len(families) > 1:
        raise PoolConfigError(f"{root}: several base models found ({', '.join(sorted(families))}); pick one with --model")
    (base, tasks), = families.items()
    droot = Path(data_root) if data_root is not None else (root / "glue" if (root / "glue").is_dir() else None)

    def data_of(t: str) -> Path | None:
        return _data_dir(droot, t) or (_data_dir(root, t) if data_root is None else None)

    specs = [TaskSpec(name=t, checkpoint=root / f"{base}_{t}", dataset=None if is_text_file(data_of(t)) else glue_name(t),
                      data=data_of(t)) for t in _task_order(tasks)]
    return PoolSpec(base=root / base, tasks=specs, source=root.resolve(), layout="hf", data_root=droot)


# --- the pool ----------------------------------------------------------------------------------------------------

class HFPool(ModelPool):
    """Base and fine-tuned Hugging Face models, their task heads, GLUE data and metrics (see the module docstring).

    Reading is lazy and memory-mapped; each fine-tune is checked against the base when first read (named errors for
    another model type, vocabulary, shape or a missing task head, each naming the folder, the key and both shapes).
    """

    family = "lm"

    def __init__(self, spec: PoolSpec, *, matrix_rule: str = "default") -> None:
        if not spec.tasks:
            raise PoolConfigError("a pool needs at least one task")
        if matrix_rule not in hf.MATRIX_RULES:
            raise PoolConfigError(f"unknown matrix rule {matrix_rule!r} (rules: {', '.join(hf.MATRIX_RULES)})")
        self.spec = spec
        self.matrix_rule = matrix_rule
        self.name = spec.name or str(spec.source or spec.base)
        self.task_names = [t.name for t in spec.tasks]
        self._tasks = {t.name: t for t in spec.tasks}
        if not Path(spec.base).exists():
            raise MissingTaskError(f"base model folder {spec.base} does not exist")
        self.base = hf.read_hf_folder(spec.base)
        self.architecture = self.base.model_type
        self.folders: dict[str, hf.HFFolder] = {}
        for t in spec.tasks:
            if not Path(t.checkpoint).exists():
                raise MissingTaskError(f"task {t.name!r}: model folder {t.checkpoint} does not exist")
            folder = hf.read_hf_folder(t.checkpoint)
            if folder.model_type != self.base.model_type:
                raise ArchitectureMismatchError(
                    f"task {t.name!r}: {folder.path} is a {folder.model_type} model "
                    f"({', '.join(folder.architectures) or 'no class'}), the base {self.base.path} is a "
                    f"{self.base.model_type} model ({', '.join(self.base.architectures) or 'no class'})"
                )
            self.folders[t.name] = folder
        self._body_keys: list[str] | None = None
        self._checked: set[str] = set()
        #: (task, split, subsample) → (base, fine-tune) per-example losses of a language-modelling task
        self._reference_losses: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **kwargs: Any) -> "HFPool":
        from spectral.checkpoints.pool import read_pool_yaml

        return cls(read_pool_yaml(path), **kwargs)

    @classmethod
    def discover(cls, directory: str | os.PathLike[str], *, model: str | None = None,
                 data_root: str | os.PathLike[str] | None = None, **kwargs: Any) -> "HFPool":
        return cls(discover_hf_pool(directory, model=model, data_root=data_root), **kwargs)

    @classmethod
    def from_folders(cls, base: str | os.PathLike[str], finetuned: list[str | os.PathLike[str]], *,
                     names: list[str] | None = None, **kwargs: Any) -> "HFPool":
        """A pool of a base folder and fine-tuned folders (task names: ``<base>_<task>`` → ``task``, else the
        folder's name), as ``python -m spectral merge --base DIR --finetuned DIR ...`` gives them."""
        base_path = Path(os.path.expanduser(str(base)))
        hf.read_hf_folder(base_path)  # MissingConfigError naming the base first
        if not finetuned:
            raise PoolConfigError("--base needs at least one --finetuned model folder")
        if names is None:
            names = []
            for f in finetuned:
                stem = Path(f).resolve().name
                prefix = base_path.resolve().name + "_"
                names.append(stem[len(prefix):] if stem.startswith(prefix) and len(stem) > len(prefix) else stem)
        if len(set(names)) != len(names):
            raise PoolConfigError(f"task names must be unique, got {names}")
        tasks = [TaskSpec(name=n, checkpoint=Path(os.path.expanduser(str(f))), dataset=glue_name(n))
                 for n, f in zip(names, finetuned)]
        return cls(PoolSpec(base=base_path, tasks=tasks, source=base_path.resolve(), layout="hf"), **kwargs)

    # -- keys --------------------------------------------------------------------------------------------------
    def task_spec(self, task: str) -> TaskSpec:
        try:
            return self._tasks[task]
        except KeyError:
            raise MissingTaskError(f"pool {self.name!r} has no task {task!r}; tasks are {self.task_names}") from None

    def body_keys(self) -> list[str]:
        """Canonical keys merged: the base's body minus buffers and minus tensors no fine-tune has."""
        if self._body_keys is None:
            base_keys = self.base.body_keys()
            in_any: set[str] = set()
            for folder in self.folders.values():
                in_any |= set(folder.body_keys())
            buffers = self.base.buffer_keys()
            self._body_keys = [k for k in base_keys if k in in_any and k not in buffers]
            only = self.base_only_keys()
            if only:
                log.info("%s: %d tensor(s) only the base has are kept as they are (e.g. %s)", self.base.path,
                         len(only), only[:3])
        return self._body_keys

    def base_only_keys(self) -> list[str]:
        """Canonical keys of the base that are not merged (a pooler, an ``lm_head`` no fine-tune has, buffers)."""
        body = set(self.body_keys())
        return [k for k in self.base.body_keys() if k not in body]

    def _check(self, task: str) -> hf.HFFolder:
        folder = self.folders[self.task_spec(task).name]
        if task not in self._checked:
            hf.check_compatible(self.base, folder, f"task {task!r}:", self.body_keys())
            declared = folder.architectures[0] if folder.architectures else ""
            if self.is_lm_task(task):
                if declared and not declared.endswith(_CAUSAL_LM_SUFFIXES):
                    raise CheckpointError(
                        f"task {task!r}: its data {self.task_spec(task).data} is a text file (scored by token loss), "
                        f"but {folder.path} is a {declared}, not a causal language model (*ForCausalLM / *LMHeadModel)"
                    )
                self._checked.add(task)
                return folder
            needs_head = declared.endswith("Classification") or self.task_spec(task).dataset is not None
            if needs_head and not folder.head_keys():
                patterns = " or ".join(p.strip("^\\.") + ".*" for p in folder.arch.head_patterns)
                raise hf.MissingHeadError(
                    f"task {task!r}: {folder.path} ({declared or 'no class'}) has no task head ({patterns}): a "
                    "fine-tune for a classification task is a *ForSequenceClassification model with its head"
                )
            self._checked.add(task)
        return folder

    # -- weights -----------------------------------------------------------------------------------------------
    def base_state_dict(self) -> Mapping[str, Tensor]:  # type: ignore[override]
        """Canonical body of the base (lazy, memory-mapped; GPT-2 Conv1D weights transposed to out × in)."""
        return self.base.body(self.body_keys())

    def finetuned_state_dict(self, task: str) -> Mapping[str, Tensor]:  # type: ignore[override]
        """Canonical body of a fine-tune: the keys of :meth:`base_state_dict`, cast to the base's dtypes."""
        folder = self._check(task)
        base_stored = self.base.body_keys()
        dtypes = {k: self.base.stored[base_stored[k]].dtype for k in self.body_keys()}
        return folder.body(self.body_keys(), dtypes=dtypes)

    def base_only_state_dict(self) -> dict[str, Tensor]:
        """Canonical tensors of the base that are not merged (kept as they are)."""
        mapping = self.base.body_keys()
        return {k: self.base.body_tensor(k, mapping[k]) for k in self.base_only_keys()}

    def head_state_dict(self, task: str) -> dict[str, Tensor]:
        """The task's head under its stored names (``{"score.weight": ...}``)."""
        return self._check(task).head()

    def matrix_filter(self, key: str, tensor: Tensor) -> bool:
        """Merged as a matrix under the pool's rule (``default``: every 2-D body weight, FusionBench's rule;
        ``attn_mlp``: attention and MLP projections only). See :mod:`spectral.checkpoints.hf`."""
        return self.matrix_filter_named(self.matrix_rule)(key, tensor)

    def matrix_filter_named(self, rule: str) -> Callable[[str, Tensor], bool]:
        return hf.matrix_filter(self.architecture, rule)

    def matrix_filters(self) -> dict[str, Callable[[str, Tensor], bool]]:
        """The pool's rules by name (``"default"``: FusionBench's, every 2-D body weight; ``"attn_mlp"``)."""
        return {rule: self.matrix_filter_named(rule) for rule in hf.MATRIX_RULES}

    # -- tasks -------------------------------------------------------------------------------------------------
    def dataset_name(self, task: str) -> str:
        spec = self.task_spec(task)
        return glue_name(spec.dataset or spec.name) or spec.dataset or spec.name

    def is_lm_task(self, task: str) -> bool:
        """Whether the task is scored by mean token loss on a JSONL text file (its ``data`` is a ``.jsonl`` file)."""
        return is_text_file(self.task_spec(task).data)

    def metric(self, task: str) -> str:
        """``"normalised"`` (the token-loss score, :mod:`spectral.eval.lm_loss`) for a task with a JSONL text file,
        else ``"mcc"`` (Matthews correlation) for CoLA, ``"accuracy"`` otherwise."""
        if self.is_lm_task(task):
            return "normalised"
        return "mcc" if self.dataset_name(task) == "CoLA" else "accuracy"

    def num_classes(self, task: str) -> int:
        return len(self.class_names(task))

    def head_fingerprint(self, task: str) -> str:
        """Content hash of the task's head tensors (names and values); for a text-file task (no head) the bytes of
        its test and val files, which define its score as a head does."""
        import hashlib

        from spectral.taskset import content_hash

        h = hashlib.sha256()
        for key, value in sorted(self.head_state_dict(task).items()):
            h.update(f"{key}:{content_hash(value)}".encode())
        if self.is_lm_task(task):
            test = Path(self.task_spec(task).data)  # type: ignore[arg-type]
            for path in (test, test.with_name(f"{test.stem}.val{test.suffix}")):
                h.update(f"{path.name}:".encode())
                h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"-")
        return h.hexdigest()

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
    ) -> TaskScores:
        """Matthews correlation (CoLA) or accuracy per task of a canonical body, each task through its own model
        class and head (:func:`spectral.eval.text.text_task_estimates`), text streamed in padded batches of at most
        64 (``batch_size`` caps it). Matthews correlations carry their bootstrap interval. A task with a JSONL text
        file gets its normalised token-loss score (:func:`spectral.eval.lm_loss.lm_task_estimates`), its bootstrap
        interval, and the model's mean token loss in ``losses``."""
        from spectral.eval.lm_loss import lm_task_estimates
        from spectral.eval.text import text_task_estimates

        wanted = list(tasks) if tasks is not None else list(self.task_names)
        lm_tasks = [t for t in wanted if self.is_lm_task(t)]
        cls_tasks = [t for t in wanted if t not in lm_tasks]
        scores: dict[str, float] = {}
        counts: dict[str, int] = {}
        bounds: dict[str, tuple[float, float]] = {}
        losses: dict[str, float] = {}
        if cls_tasks:
            est = text_task_estimates(self, state_dict, tasks=cls_tasks, split=split, device=device,
                                      batch_size=min(int(batch_size), 64), progress=progress, subsample=subsample)
            scores |= {t: e.score for t, e in est.items()}
            counts |= {t: e.n for t, e in est.items()}
            bounds |= {t: (e.low, e.high) for t, e in est.items() if e.method != "wilson"}
        if lm_tasks:
            lm = lm_task_estimates(self, state_dict, tasks=lm_tasks, split=split, device=device, progress=progress,
                                   subsample=subsample)
            scores |= {t: e.score for t, e in lm.items()}
            counts |= {t: e.n for t, e in lm.items()}
            bounds |= {t: (e.low, e.high) for t, e in lm.items()}
            losses |= {t: e.loss for t, e in lm.items()}
        return TaskScores({t: scores[t] for t in wanted}, {t: counts[t] for t in wanted}, bounds, losses=losses)

    def reference_losses(self, task: str, split: str = "test", subsample: int | None = None, *,
                         device: str | torch.device = "cpu", max_batch_tokens: int | None = None) -> tuple[Any, Any]:
        """(base, fine-tune) :class:`~spectral.eval.lm_loss.ExampleLosses` of a language-modelling task on the
        examples a ``subsample`` of ``split`` scores, computed once per pool (both through the task's own causal-LM
        class, as every evaluated model is, so the normalised scores of the base and the fine-tune are 0 and 1
        exactly)."""
        from spectral.eval.lm_loss import MAX_BATCH_TOKENS, example_losses, subsample_indices

        data = self.dataset(task, split)
        indices = subsample_indices(len(data), subsample)
        key = (task, split, 0 if indices is None else len(indices))
        if key not in self._reference_losses:
            tok = self.tokenizer(task)
            out = []
            for body in (self.base_state_dict(), self.finetuned_state_dict(task)):
                model = self.task_model(task, body, device)
                out.append(example_losses(model, tok, data, indices=indices, device=device,
                                          max_batch_tokens=max_batch_tokens or MAX_BATCH_TOKENS))
                del model
            self._reference_losses[key] = (out[0], out[1])
        return self._reference_losses[key]

    def task_forward(self, base: Mapping[str, Tensor], device: torch.device, *, seed: int = 0,
                     logit_scale: float | None = None) -> Any:
        """Each task's model class over the merged body, for AdaRank / AdaMerging (no logit scale: the heads are
        the fine-tunes' own)."""
        from spectral.adapt.forward import TextForward

        text_tasks = [t for t in self.task_names if self.is_lm_task(t)]
        if text_tasks:
            from spectral.errors import ParameterError

            raise ParameterError(
                f"pool {self.name!r}: test-time adaptation (AdaMerging, AdaRank) minimises the entropy of a "
                f"classifier's predictions; the tasks {text_tasks} are scored by token loss on a text file and have "
                "no classifier"
            )
        return TextForward(self, base, device, seed=seed)

    def module_parameters(self, model: nn.Module, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Canonical body tensors → ``model``'s own parameter names and stored orientation (GPT-2's Conv1D weights
        transposed back), differentiably; for ``torch.func.functional_call`` on a :meth:`task_model`."""
        keymap: dict[str, str] | None = getattr(model, "_spectral_keymap", None)
        if keymap is None:
            arch = self.base.arch
            keymap = {}
            for key in model.state_dict():
                canonical = arch.canonical(key)
                keymap.setdefault(canonical, key)
            model._spectral_keymap = keymap  # type: ignore[attr-defined]
        arch = self.base.arch
        out = {}
        for canonical, value in params.items():
            key = keymap.get(canonical)
            if key is None:
                continue
            out[key] = value.mT if value.ndim == 2 and arch.is_transposed(canonical) else value
        return out

    def class_names(self, task: str) -> list[str]:
        cfg = self.folders[self.task_spec(task).name].config
        labels = cfg.get("id2label") or {}
        n = int(cfg.get("num_labels") or len(labels) or 2)
        return [str(labels.get(str(i), labels.get(i, i))) for i in range(n)]  # type: ignore[call-overload]

    def tokenizer(self, task: str | None = None) -> Any:
        """``AutoTokenizer`` from the fine-tune's folder (the base's when it has no tokenizer files); a tokenizer
        without a pad token (GPT-2) pads with its EOS token, as ``GPT2ForSequenceClassification`` expects."""
        from transformers import AutoTokenizer

        folder = self.folders[self.task_spec(task).name].path if task is not None else self.base.path
        if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
            folder = self.base.path
        if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
            raise CheckpointError(f"{folder}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        tok = AutoTokenizer.from_pretrained(str(folder))
        if tok.pad_token is None and tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        return tok

    def task_model(self, task: str, body: Mapping[str, Tensor], device: str | torch.device = "cpu") -> nn.Module:
        """The fine-tune's own ``transformers`` class (from its config.json) with ``body`` (canonical keys and
        orientation) as its body and the task's head; eval mode, on ``device``."""
        import transformers

        folder = self._check(task)
        class_name = folder.architectures[0] if folder.architectures else ""
        cls = getattr(transformers, class_name, None) if class_name else None
        if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
            raise CheckpointError(
                f"task {task!r}: {folder.path}/config.json names class {class_name or '(none)'!r}, which is not a "
                "transformers model class (code from a model folder is never run)"
            )
        config = transformers.AutoConfig.from_pretrained(str(folder.path))
        model = cls(config)
        arch = folder.arch
        head = folder.head()
        base_map = self.base.body_keys()
        expected = model.state_dict()
        state: dict[str, Tensor] = {}
        for key, ref in expected.items():
            if key in head:
                state[key] = head[key]
                continue
            canonical = arch.canonical(key)
            if canonical in body:
                value = body[canonical]
                state[key] = value.T if value.ndim == 2 and arch.is_transposed(canonical) else value
            elif canonical in base_map:
                state[key] = self.base.stored[base_map[canonical]]
        missing = [k for k in expected if k not in state]
        tied = _tied_names(model)
        unresolved = [k for k in missing if k not in tied]
        if unresolved:
            raise CheckpointError(
                f"task {task!r}: no weights for {len(unresolved)} parameter(s) of {class_name}, e.g. {unresolved[:3]}"
            )
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise ArchitectureMismatchError(
                    f"task {task!r}: {key!r} has shape {tuple(value.shape)}, {class_name} of {folder.path} expects "
                    f"{tuple(expected[key].shape)}"
                )
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
        return model.to(device).eval()

    def dataset(self, task: str, split: str = "test") -> Any:  # type: ignore[override]
        """The task's GLUE split (``"test"`` = GLUE's validation split), via :func:`spectral.data.glue.load_glue`."""
        from spectral.data.glue import load_glue

        spec = self.task_spec(task)
        if self.is_lm_task(task):
            from spectral.eval.lm_loss import TextFileError, read_jsonl

            path = Path(spec.data)  # type: ignore[arg-type]
            if split == "val":
                path = path.with_name(f"{path.stem}.val{path.suffix}")
            elif split != "test":
                raise TextFileError(f"task {task!r}: a text-file task has the splits test ({spec.data}) and val "
                                    f"({Path(spec.data).stem}.val.jsonl beside it), not {split!r}")  # type: ignore[arg-type]
            return read_jsonl(path)
        if spec.data is None:
            raise PoolConfigError(f"task {task!r} has no data folder: set 'data:' (or 'data_root:') in the pool YAML")
        return load_glue(self.dataset_name(task), spec.data, split)

    # -- image-pool methods (not for a language pool) ----------------------------------------------------------
    def head(self, task: str) -> Tensor:
        raise NotAnImagePoolError(
            f"pool {self.name!r} is a language-model pool ({self.architecture}): it has no zero-shot image head; "
            "use head_state_dict(task) / task_model(task, body)"
        )

    def build_image_encoder(self) -> nn.Module:
        raise NotAnImagePoolError(
            f"pool {self.name!r} is a language-model pool ({self.architecture}): it has no image tower; "
            "use task_model(task, body)"
        )

    # -- reporting ---------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        return {"name": self.name, "family": self.family, "architecture": self.architecture,
                "tasks": list(self.task_names), "layout": self.spec.layout, "base": str(self.spec.base),
                "matrix_rule": self.matrix_rule, "base_only": self.base_only_keys(),
                "metrics": {t: self.metric(t) for t in self.task_names}}

    def check(self, *, heads: bool = True, data: bool = True) -> list[dict[str, Any]]:
        """Read every fine-tune (and data folder) once; one report row per item, errors caught and reported."""
        report: list[dict[str, Any]] = []

        def record(item: str, fn: Callable[[], Any]) -> None:
            try:
                report.append({"item": item, "ok": True, "detail": fn()})
            except Exception as exc:  # noqa: BLE001 - reported, not swallowed silently
                report.append({"item": item, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})

        record("base", lambda: f"{self.base.model_type} {', '.join(self.base.architectures)} {self.base.path} "
                               f"({len(self.body_keys())} body tensors, base-only: {self.base_only_keys()[:4]})")
        for task in self.task_names:
            record(f"{task}: checkpoint", lambda t=task: f"{len(self.finetuned_state_dict(t))} tensors from "
                                                        f"{self.folders[t].path}")
            if heads:
                record(f"{task}: head", lambda t=task: {k: tuple(v.shape) for k, v in self.head_state_dict(t).items()})
            if data:
                if self.task_spec(task).data is None:
                    report.append({"item": f"{task}: data", "ok": True, "detail": "no data folder (skipped)"})
                else:
                    record(f"{task}: data", lambda t=task: f"{len(self.dataset(t, 'test'))} test examples")
        return report


def _tied_names(model: nn.Module) -> set[str]:
    """Parameter names that share their tensor with another name (tied embeddings): filled by that one."""
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return {n for names in seen.values() if len(names) > 1 for n in names}
