"""The test-time adaptation loop: AdaRank (Lee et al. 2025) and AdaMerging (Yang et al. 2024) with progress,
stop/resume through checkpoints, and honest selection.

- **Objective** (AdaRank Eq. 6, AdaMerging Eq. 5): Σ_tasks mean entropy of the merged model's softmax predictions on
  ``batch_size`` unlabelled test images of the task per step; Adam (lr 1e-3, betas (0.9, 0.999)) on the mask
  logits and λ. The image tower runs with the merged parameters through ``torch.func.functional_call``, so
  gradients reach the logits (through the straight-through mask) and λ; the zero-shot heads stay frozen.
- **Selection never sees labels**: the result is the last step (``selection="last"``) or the step with the lowest
  entropy on a fixed set of unlabelled test images (``"min_entropy"``; evaluated every ``select_every`` steps).
  The authors' code reports the best *test accuracy* over its evaluations; here a test-accuracy trace may be
  recorded (``eval_every``), is labelled as using labels, and is never read by the selection.
- **Stop / resume**: ``stop`` (a ``threading.Event``) is checked between steps; a checkpoint (λ, logits, Adam state,
  step, traces, the lowest-entropy snapshot) is written every ``checkpoint_every`` steps and when the loop ends.
  Batches are a function of (seed, task, step), so a resumed run continues exactly as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor
from torch.func import functional_call

from spectral.adapt.checkpoint import (
    load_checkpoint,
    optimizer_tensors,
    read_document,
    restore_optimizer,
    save_checkpoint,
)
from spectral.adapt.data import pool_logit_scale, softmax_entropy
from spectral.adapt.forward import TaskForward
from spectral.adapt.merge import BASES, LAMBDA_MODES, AdaptiveMerge, kept_rank
from spectral.adapt.ste import DEFAULT_LOGIT_INIT, DEFAULT_TEMPERATURE
from spectral.cache import default_cache_dir
from spectral.adapt.errors import AdaptError
from spectral.errors import ParameterError

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

METHODS = ("adarank", "adamerging")
#: the papers' Adam learning rate by pool family: 1e-3 for CLIP (AdaRank App. A, AdaMerging), 5e-5 for the GLUE
#: language models (AdaRank §6.3, following FusionBench's language runs)
PAPER_LR = {"clip": 1e-3, "lm": 5e-5}


def paper_lr(pool: Any) -> float:
    """The papers' learning rate for test-time adaptation on ``pool``'s family."""
    return PAPER_LR.get(getattr(pool, "family", "clip") or "clip", PAPER_LR["clip"])
SELECTIONS = ("last", "min_entropy")

#: config fields that do not change the optimisation trajectory (they are left out of the run id, so a run can be
#: extended, re-selected or evaluated differently and still resume from its checkpoint)
_NOT_IN_RUN_ID = ("steps", "selection", "checkpoint_every", "eval_every", "eval_images")


def _noop(i: int, n: int, text: str) -> None:
    return None


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of one adaptation run; the defaults are the papers' (AdaRank App. A, AdaMerging §5).

    ``lambda_init=None`` takes the base method's default α from the method registry (Task Arithmetic: 0.3, the
    value AdaRank App. A starts from; CART: the registry's default). ``k_frac`` is CART's initial rank fraction
    (AdaRank searched {0.08, 0.12, 0.16, 0.32}; its released 8-task ViT-B/32 configuration uses 0.16).
    ``steps`` defaults to AdaMerging's 500 (the AdaRank code runs 10 000 on a GPU).
    """

    method: str = "adarank"
    base: str = "task_arithmetic"
    lambda_mode: str = "layer"
    lambda_init: float | None = None
    k_frac: float = 0.16
    mask_filter: str = "attn_mlp"
    temperature: float = DEFAULT_TEMPERATURE
    logit_init: float = DEFAULT_LOGIT_INIT
    lambda_clamp: tuple[float, float] | None = None
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 16
    steps: int = 500
    seed: int = 0
    selection: str = "last"
    select_every: int = 10
    select_images: int = 64
    checkpoint_every: int = 25
    eval_every: int = 0
    eval_images: int | None = 256

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.base not in BASES:
            raise ParameterError(f"base must be one of {list(BASES)}, got {self.base!r}")
        if self.lambda_mode not in LAMBDA_MODES:
            raise ParameterError(f"lambda_mode must be one of {list(LAMBDA_MODES)}, got {self.lambda_mode!r}")
        if self.selection not in SELECTIONS:
            raise ParameterError(f"selection must be one of {list(SELECTIONS)}, got {self.selection!r}")
        if self.method == "adamerging" and self.lambda_mode == "frozen":
            raise ParameterError("AdaMerging with frozen λ has nothing to learn: use lambda_mode 'task' or 'layer'")
        for name in ("batch_size", "select_every", "select_images", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps < 0 or self.eval_every < 0:
            raise ParameterError("steps and eval_every must not be negative")
        if self.lr <= 0:
            raise ParameterError(f"lr must be positive, got {self.lr}")
        # JSON round trips give lists: keep the dataclass hashable and comparable
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.lambda_clamp is not None:
            object.__setattr__(self, "lambda_clamp", tuple(float(b) for b in self.lambda_clamp))

    @property
    def label(self) -> str:
        """Display name: "TA+AdaRank", "CART+AdaMerging (layer-wise)", ..."""
        base = {"task_arithmetic": "TA", "cart": "CART"}[self.base]
        if self.method == "adarank":
            lam = {"layer": "", "task": ", task-wise λ", "frozen": ", fixed λ"}[self.lambda_mode]
            return f"{base}+AdaRank{f' ({lam[2:]})' if lam else ''}"
        return f"{base}+AdaMerging ({self.lambda_mode}-wise)"

    @property
    def result_method(self) -> str:
        """Method name for the results store: ``adarank_ta``, ``adamerging_layer_ta``, ``adarank_cart`` ..."""
        base = {"task_arithmetic": "ta", "cart": "cart"}[self.base]
        if self.method == "adarank":
            return f"adarank_{base}" if self.lambda_mode == "layer" else f"adarank_{self.lambda_mode}_{base}"
        return f"adamerging_{self.lambda_mode}_{base}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AdaptConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known})


@dataclass
class AdaptResult:
    """What a run produced, for the selected step.

    ``masks[key]`` is a bool (T, r) tensor (task × component, AdaRank Fig. 5); ``lambdas`` is (T, P) with columns in
    ``lambda_keys`` order; ``state_dict`` is the merged image tower. ``traces`` holds ``step``/``entropy`` (training
    objective per step, unlabelled), ``task_entropy`` (per task per step), ``select_step``/``select_entropy``
    (fixed unlabelled selection set) and, when recorded, ``acc_step``/``test_accuracy`` — which used the test labels
    and served only for display.
    """

    run_id: str
    config: AdaptConfig
    task_names: list[str]
    step: int
    finished: bool
    selected_step: int
    selection: str
    state_dict: dict[str, Tensor]
    masks: dict[str, Tensor]
    initial_masks: dict[str, Tensor]
    lambdas: Tensor
    lambda_keys: list[str]
    traces: dict[str, Any]
    seconds_per_step: float | None
    checkpoint: Path | None = None

    @property
    def label(self) -> str:
        return self.config.label

    def kept_rank(self) -> dict[str, list[int]]:
        """Kept components per task for every masked key."""
        return kept_rank(self.masks)

    def mask_tensor(self) -> Tensor:
        """Masks stacked as (layers, T, r_max) with -1 padding where a layer has fewer components."""
        if not self.masks:
            return torch.empty(0, len(self.task_names), 0, dtype=torch.int8)
        r_max = max(m.shape[-1] for m in self.masks.values())
        out = torch.full((len(self.masks), len(self.task_names), r_max), -1, dtype=torch.int8)
        for i, m in enumerate(self.masks.values()):
            out[i, :, : m.shape[-1]] = m.to(torch.int8)
        return out


def _empty_traces(task_names: list[str]) -> dict[str, Any]:
    return {
        "step": [], "entropy": [], "task_entropy": {t: [] for t in task_names},
        "select_step": [], "select_entropy": [],
        "acc_step": [], "test_accuracy": {t: [] for t in task_names},
        "test_accuracy_note": "uses the test labels; recorded for display only, never used to select the result",
    }


class Adaptation:
    """One AdaRank / AdaMerging run over an engine's TaskSet and the matching :class:`~spectral.pool.ModelPool`.

    >>> run = Adaptation(engine, pool, AdaptConfig(method="adarank", base="cart", steps=200))  # doctest: +SKIP
    >>> result = run.run(progress=print)            # resumes from cache/adapt/<run_id>.safetensors if present
    >>> result.masks, result.lambdas, result.state_dict, result.traces

    Thread-safe for one runner and any number of readers (:meth:`status`, :meth:`traces_copy`).
    """

    def __init__(
        self,
        engine: Any,
        pool: Any,
        config: AdaptConfig | None = None,
        *,
        cache_dir: str | Path | None = None,
        logit_scale: float | None = None,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.config = config or AdaptConfig()
        ts = engine.taskset
        if list(ts.task_names) != list(pool.task_names):
            raise AdaptError(
                f"the engine's tasks {list(ts.task_names)} and the pool's {list(pool.task_names)} differ"
            )
        self.task_names: list[str] = list(ts.task_names)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        # the CLIP family's heads are read with a logit scale (the run id depends on it); other families have none
        self.logit_scale = (float(logit_scale) if logit_scale is not None
                            else pool_logit_scale(pool) if getattr(pool, "family", "clip") == "clip" else 1.0)
        self.run_id = self._run_id()
        self.checkpoint_path = self.cache_dir / "adapt" / f"{self.run_id}.safetensors"
        self.step = 0
        self.traces = _empty_traces(self.task_names)
        self.train_seconds = 0.0
        self.train_steps_timed = 0
        self.best: dict[str, Tensor] | None = None
        self.best_step = 0
        self.best_entropy = float("inf")
        self.state = "new"  # new | preparing | prepared | running | stopped | finished | failed
        self._lock = threading.RLock()
        self._merge: AdaptiveMerge | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._forward: TaskForward | None = None

    # -- identity -----------------------------------------------------------------------------------------
    def _run_id(self) -> str:
        ts = self.engine.taskset
        cfg = {k: v for k, v in self.config.to_dict().items() if k not in _NOT_IN_RUN_ID}
        identity = {
            "config": cfg,
            "lambda_init": self.lambda_init,
            "pool": getattr(self.pool, "name", ""),
            "tasks": self.task_names,
            "matrix_keys": list(ts.matrix_keys),
            "logit_scale": self.logit_scale,
            # content of the task matrices (the SVD cache's keys; computed once per TaskSet)
            "content": [ts.matrix_hash(t, k) for k in ts.matrix_keys[:2] for t in range(ts.num_tasks)],
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def lambda_init(self) -> float:
        if self.config.lambda_init is not None:
            return float(self.config.lambda_init)
        from spectral.methods import get_method

        method = get_method(self.config.base)
        return float(method.resolve_params({}, len(self.task_names)).get("alpha", 1.0))

    # -- setup --------------------------------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> None:
        """Read the cached SVD factors, build the merged-model parametrisation, the encoder and the data; load the
        checkpoint when one exists. Idempotent."""
        if self._merge is not None:
            return
        progress = progress or _noop
        cfg = self.config
        merge = AdaptiveMerge(
            self.engine,
            base=cfg.base,
            masked=cfg.method == "adarank",
            mask_filter=cfg.mask_filter,
            lambda_mode=cfg.lambda_mode,
            lambda_init=self.lambda_init,
            k_frac=cfg.k_frac,
            temperature=cfg.temperature,
            logit_init=cfg.logit_init,
            lambda_clamp=cfg.lambda_clamp,
            progress=progress,
        )
        trainable = merge.trainable()
        if not trainable:
            raise ParameterError(f"{cfg.label}: nothing to learn (no masked layer and λ frozen)")
        self._optimizer = torch.optim.Adam(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
        device = merge.device
        self._forward = self.pool.task_forward(dict(self.engine.taskset.base), device, seed=cfg.seed,
                                               logit_scale=self.logit_scale)
        self._merge = merge
        try:
            if self.checkpoint_path.is_file():
                self._load()
            else:
                self.best = merge.snapshot()
        except BaseException:
            self._merge = None
            raise
        self.state = "prepared" if self.step < cfg.steps else "finished"

    def checkpoint_step(self) -> int | None:
        """The step of this run's checkpoint on disk (None when there is none or it is unreadable)."""
        if self._merge is not None:
            return self.step if self.checkpoint_path.is_file() else None
        if not self.checkpoint_path.is_file():
            return None
        try:
            doc = read_document(self.checkpoint_path)
        except AdaptError:
            return None
        return int(doc["step"]) if doc.get("run_id") == self.run_id else None

    @property
    def merge(self) -> AdaptiveMerge:
        if self._merge is None:
            raise AdaptError("call prepare() first")
        return self._merge

    # -- forward ------------------------------------------------------------------------------------------
    def _task_entropies(self, params: Mapping[str, Tensor], batches: list[Any]) -> list[Tensor]:
        """Mean entropy per task of the merged model's predictions on each task's unlabelled batch."""
        assert self._forward is not None
        return [softmax_entropy(logits).mean() for logits in self._forward.logits(params, batches)]

    def _selection_entropy(self) -> float:
        """Σ_tasks mean entropy on the fixed unlabelled selection images (no labels, no gradient)."""
        with torch.no_grad():
            params = self.merge.merged_parameters()
            assert self._forward is not None
            batches = [self._forward.fixed(t, self.config.select_images) for t in range(len(self.task_names))]
            return float(sum(h.item() for h in self._task_entropies(params, batches)))

    def _test_accuracy(self) -> list[float]:
        """Accuracy per task on (a prefix of) the labelled test split — for the display trace only."""
        accs = []
        limit = self.config.eval_images
        with torch.no_grad():
            params = self.merge.merged_parameters()
            assert self._forward is not None
            for t in range(len(self.task_names)):
                correct = n = 0
                for inputs, labels in self._forward.labelled(t, limit):
                    pred = self._forward.task_logits(params, t, inputs)
                    correct += int((pred.argmax(-1).cpu() == labels).sum())
                    n += int(labels.numel())
                accs.append(correct / max(n, 1))
        return accs

    # -- the loop -----------------------------------------------------------------------------------------
    def run(
        self,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        steps: int | None = None,
    ) -> AdaptResult:
        """Optimise until ``steps`` (default: the config's) or until ``stop`` is set; checkpoint; return the
        result for the configured selection. Calling it again continues from where it stopped."""
        progress = progress or _noop
        if steps is not None and steps != self.config.steps:
            self.config = replace(self.config, steps=int(steps))
        cfg = self.config
        total = cfg.steps
        with self._lock:
            self.state = "preparing" if self._merge is None else "running"
        try:
            self.prepare(progress)
            if self.step > total:
                log.warning("%s: the checkpoint %s is already at step %d, past the %d asked for; returning step %d "
                            "(run_adaptation(..., fresh=True) or `--fresh` starts over)",
                            cfg.label, self.checkpoint_path, self.step, total, self.step)
            with self._lock:
                self.state = "running"
            merge, opt = self.merge, self._optimizer
            assert opt is not None
            if not self.traces["select_step"]:
                self._record_selection(self._selection_entropy())
                if cfg.eval_every:
                    self._record_accuracy(self._test_accuracy())
            progress(self.step, total, f"{cfg.label}: step {self.step}/{total}")
            while self.step < total:
                if stop is not None and stop.is_set():
                    break
                started = time.perf_counter()
                step = self.step
                batches = [self._forward.batch(t, step, cfg.batch_size) for t in range(len(self.task_names))]
                opt.zero_grad(set_to_none=True)
                params = merge.merged_parameters()
                entropies = self._task_entropies(params, batches)
                loss = torch.stack(entropies).sum()
                loss.backward()
                opt.step()
                elapsed = time.perf_counter() - started
                loss_value = float(loss.detach())
                with self._lock:
                    self.step = step + 1
                    self.train_seconds += elapsed
                    self.train_steps_timed += 1
                    self.traces["step"].append(self.step)
                    self.traces["entropy"].append(loss_value)
                    for t, h in zip(self.task_names, entropies):
                        self.traces["task_entropy"][t].append(float(h.detach()))
                if self.step % cfg.select_every == 0 or self.step == total:
                    self._record_selection(self._selection_entropy())
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == total):
                    self._record_accuracy(self._test_accuracy())
                if self.step % cfg.checkpoint_every == 0:
                    self._save()
                progress(self.step, total, f"{cfg.label}: step {self.step}/{total} · entropy {loss_value:.4f}")
            self._save()
            with self._lock:
                self.state = "finished" if self.step >= total else "stopped"
            return self.result()
        except BaseException:
            with self._lock:
                self.state = "failed"
            raise

    def _record_selection(self, entropy: float) -> None:
        with self._lock:
            self.traces["select_step"].append(self.step)
            self.traces["select_entropy"].append(entropy)
            if entropy < self.best_entropy:
                self.best_entropy = entropy
                self.best_step = self.step
                self.best = self.merge.snapshot()

    def _record_accuracy(self, accs: list[float]) -> None:
        with self._lock:
            self.traces["acc_step"].append(self.step)
            for t, a in zip(self.task_names, accs):
                self.traces["test_accuracy"][t].append(a)

    # -- checkpoints --------------------------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "config": self.config.to_dict(), "label": self.config.label,
            "pool": getattr(self.pool, "name", ""), "tasks": self.task_names, "step": self.step,
            "best_step": self.best_step, "best_entropy": self.best_entropy, "traces": self.traces,
            "train_seconds": self.train_seconds, "train_steps_timed": self.train_steps_timed,
            "lambda_init": self.lambda_init, "logit_scale": self.logit_scale, "saved_at": time.time(),
        }

    def _save(self) -> None:
        assert self._optimizer is not None
        with self._lock:
            tensors = {f"current.{k}": v for k, v in self.merge.snapshot().items()}
            if self.best is not None:
                tensors.update({f"best.{k}": v for k, v in self.best.items()})
            tensors.update(optimizer_tensors(self._optimizer))
            document = self._document()
        save_checkpoint(self.checkpoint_path, tensors, document)

    def _load(self) -> None:
        assert self._optimizer is not None
        tensors, doc = load_checkpoint(self.checkpoint_path)
        if doc.get("run_id") != self.run_id:
            raise AdaptError(f"{self.checkpoint_path} belongs to run {doc.get('run_id')!r}, not {self.run_id!r}")
        current = {k[len("current."):]: v for k, v in tensors.items() if k.startswith("current.")}
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        self.merge.load_snapshot(current)
        restore_optimizer(self._optimizer, tensors)
        self.step = int(doc["step"])
        self.traces = doc["traces"]
        self.best = best or self.merge.snapshot()
        self.best_step = int(doc["best_step"])
        self.best_entropy = float(doc["best_entropy"])
        self.train_seconds = float(doc.get("train_seconds", 0.0))
        self.train_steps_timed = int(doc.get("train_steps_timed", 0))
        log.info("resumed %s (%s) at step %d from %s", self.run_id, self.config.label, self.step, self.checkpoint_path)

    # -- results ------------------------------------------------------------------------------------------
    def selected_snapshot(self) -> tuple[int, dict[str, Tensor]]:
        """(step, snapshot) chosen by the configured rule — the last step or the lowest selection entropy.
        Only unlabelled quantities are consulted."""
        with self._lock:
            if self.config.selection == "min_entropy" and self.best is not None:
                return self.best_step, self.best
            return self.step, self.merge.snapshot()

    def result(self) -> AdaptResult:
        merge = self.merge
        step, snap = self.selected_snapshot()
        state_dict = merge.state_dict(snap)
        T = merge.num_tasks
        masks = {k: (torch.sigmoid(snap[f"logit.{k}"] / merge.temperature) > 0.5) for k in merge.mask_keys}
        initial = {k: torch.arange(merge.rank[k]).expand(T, -1) < merge.initial_kept[k] for k in merge.mask_keys}
        lam = snap["lambda"]
        lam = lam.expand(T, len(merge.keys)) if lam.shape[1] == 1 else lam
        if merge.lambda_clamp is not None:
            lam = lam.clamp(*merge.lambda_clamp)
        with self._lock:
            traces = json.loads(json.dumps(self.traces))
            per_step = self.train_seconds / self.train_steps_timed if self.train_steps_timed else None
            finished = self.step >= self.config.steps
        return AdaptResult(
            run_id=self.run_id, config=self.config, task_names=list(self.task_names), step=self.step,
            finished=finished, selected_step=step, selection=self.config.selection, state_dict=state_dict,
            masks=masks, initial_masks=initial, lambdas=lam.clone(), lambda_keys=list(merge.keys), traces=traces,
            seconds_per_step=per_step, checkpoint=self.checkpoint_path if self.checkpoint_path.is_file() else None,
        )

    def status(self) -> dict[str, Any]:
        """A small thread-safe summary for progress displays."""
        with self._lock:
            return {
                "run_id": self.run_id, "label": self.config.label, "state": self.state, "step": self.step,
                "steps": self.config.steps,
                "entropy": self.traces["entropy"][-1] if self.traces["entropy"] else None,
                "seconds_per_step": self.train_seconds / self.train_steps_timed if self.train_steps_timed else None,
            }

    def traces_copy(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.traces))


def run_adaptation(
    engine: Any,
    pool: Any,
    config: AdaptConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    fresh: bool = False,
) -> AdaptResult:
    """Run (or resume) an adaptation and return its result; ``fresh=True`` discards an existing checkpoint."""
    run = Adaptation(engine, pool, config, cache_dir=cache_dir)
    if fresh:
        run.checkpoint_path.unlink(missing_ok=True)
    return run.run(progress=progress, stop=stop)
