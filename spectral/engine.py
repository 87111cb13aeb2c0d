"""The merge engine: any method, any parameters, over a whole model, from cached SVD factors.

The engine owns caching and devices. Every per-task SVD of a task matrix is computed once (batched over
same-shape layers, on CUDA when present) and kept by content hash in :class:`spectral.cache.SVDCache`; so is the
SVD of Σ_t Δ_t (Iso) and of the CART-centred matrices. A merge with new k_frac / common_frac reads factors;
a change of alpha alone reuses the last merge of the same method and parameters and costs one fused add per
tensor (methods declare whether they are linear or affine in alpha).
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict, defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor

from spectral import linalg
from spectral.cache import SVDCache, to_device
from spectral.heap import release_mapped_pages, release_mapped_pages_often
from spectral.lora import stack_factors
from spectral.heap import release_memory as release_process_memory
from spectral.methods import get_method
from spectral.methods.base import LayerFactors, Method, merge_non_matrix
from spectral.methods.tsv import tsv_c
from spectral.taskset import TaskSet, combine_hashes

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def _noop(i: int, n: int, text: str) -> None:
    return None


def _tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors in ``value`` (a tensor, or a dataclass / tuple / list / dict of them)."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if hasattr(value, "__dataclass_fields__"):
        return sum(_tensor_bytes(getattr(value, f)) for f in value.__dataclass_fields__)
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    return 0


#: a layer this large (a token embedding: 151,936 × 1,536 in Qwen2.5) releases mapped checkpoint pages at once
_LARGE_LAYER_ELEMENTS = 1 << 26


def _stack_factors(entry: Callable[[int], linalg.SVD], num_tasks: int, device: torch.device) -> linalg.SVD:
    """Stack the factors ``entry(t)`` of every task into (T, …) tensors on ``device``, reading one task at a time.

    Cache entries come memory-mapped from disk; copying each into its slot and letting it go before the next is read
    keeps one entry's pages resident beside the stack instead of all of them (the three U's of a 151,936 × 1,536
    token embedding are 2.8 GB, which a stack of mapped entries held twice).
    """
    stacked: list[Tensor] = []
    for t in range(num_tasks):
        factors = entry(t)
        if not stacked:
            stacked = [torch.empty((num_tasks, *f.shape), dtype=f.dtype, device=device) for f in factors]
        for out, part in zip(stacked, factors):
            out[t].copy_(part)
        del factors
    return tuple(stacked)  # type: ignore[return-value]


class CachedLayer(LayerFactors):
    """LayerFactors of one parameter of a TaskSet whose decompositions come from the engine's cache."""

    def __init__(self, engine: "Engine", key: str) -> None:
        super().__init__(None)
        self._engine = engine
        self._key = key
        self._loaded: Tensor | None = None

    @property
    def task_matrices(self) -> Tensor:
        if self._loaded is None:
            self._loaded = self._engine.taskset.task_matrices(self._key).to(self._engine.device)
        return self._loaded

    @property
    def num_tasks(self) -> int:
        return self._engine.taskset.num_tasks

    @property
    def shape(self) -> tuple[int, int]:
        m, n = self._engine.taskset.base[self._key].shape
        return int(m), int(n)

    def task_svd(self) -> linalg.SVD:
        return self._memoised("task", lambda: self._engine.task_factors(self._key))

    def sum_svd(self) -> linalg.SVD:
        return self._memoised("sum", lambda: self._engine.derived_factors(self._key, "sum"))

    def centered_svd(self) -> linalg.SVD:
        return self._memoised("centered", lambda: self._engine.derived_factors(self._key, "centered"))

    def derived(self, name: str, compute: Callable[[], Any]) -> Any:
        return self._engine.derived_layer_data(self._key, name, compute)


class MergedDelta:
    """A merge of every parameter as an affine function of alpha: Δ(α) = c0 + α·c1 (either part may be absent)."""

    def __init__(self) -> None:
        self.constant: dict[str, Tensor] = {}
        self.slope: dict[str, Tensor] = {}

    def nbytes(self) -> int:
        return _tensor_bytes((self.constant, self.slope))


class Engine:
    """Merge a :class:`TaskSet` with any registered method, reusing cached SVD factors.

    >>> engine = Engine(taskset, cache_dir="cache", device="auto")   # doctest: +SKIP
    >>> engine.build_cache()                                           # every Δ_t's SVD, once
    >>> merged = engine.merge("tsv_m", alpha=1.0, k_frac=0.125)        # state dict: θ₀ + merged delta
    """

    def __init__(
        self,
        taskset: TaskSet,
        *,
        cache: SVDCache | None = None,
        cache_dir: str | Path | None = None,
        device: str | torch.device = "auto",
        memory_bytes: int = 4 << 30,
        batch_bytes: int = 512 << 20,
        merges_kept: int = 4,
        derived_bytes: int = 2 << 30,
    ) -> None:
        self.taskset = taskset
        self.cache = cache if cache is not None else SVDCache(cache_dir, memory_bytes=memory_bytes)
        self.device = linalg.resolve_device(device)
        self.batch_bytes = batch_bytes
        self.merges_kept = merges_kept
        self._merges: OrderedDict[tuple[Any, ...], MergedDelta] = OrderedDict()
        # k-independent per-layer data that methods derive from the factors (LayerFactors.derived), least
        # recently used first, within derived_bytes
        self.derived_bytes = derived_bytes
        self._derived: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._derived_used = 0
        # One engine may serve several dashboard sessions (threads): merges and cache builds are serialised so
        # two sessions asking for the same merge compute it once and never see a half-filled entry.
        self._lock = threading.RLock()
        #: seconds by phase of the last :meth:`build_cache` (hash, fill, svd, to_host, wait_for_writers, total, and
        #: write_thread_s summed over the writer threads)
        self.last_build_stats: dict[str, float] = {}

    # -- factors ------------------------------------------------------------------------------------------
    def task_factors(self, key: str) -> linalg.SVD:
        """Stacked factors of every task's Δ for ``key``: U (T, m, q), S (T, q), V (T, n, q), on the device.

        q = min(m, n) for full fine-tunes. A low-rank task (LoRA, :mod:`spectral.lora`) is decomposed from its
        factors and cached with its own r triplets; tasks of different widths are stacked to the widest, padded with
        σ = 0 and zero vectors (:func:`spectral.lora.stack_factors`)."""
        ts = self.taskset
        m, n = ts.base[key].shape
        hashes: list[str] = []
        computed: dict[int, linalg.SVD] = {}
        low_rank_here = False

        def keep(t: int, factors: linalg.SVD) -> None:
            self.cache.put(hashes[t], factors, shape=(m, n))
            if not self.cache.contains(hashes[t]):  # a cache that keeps nothing: hold them for the stack
                computed[t] = factors

        def compute(tasks: list[int]) -> None:
            dense = []
            for t in tasks:
                low_rank = ts.task_low_rank(t, key) if t in ts.low_rank_tasks else None
                if low_rank is not None:  # from its factors: r triplets, no m × n matrix
                    keep(t, low_rank.svd(self.device))
                else:
                    dense.append(t)
            if dense:
                matrices = torch.stack([ts.task_matrix(t, key) for t in dense]).to(self.device)
                U, S, V = linalg.thin_svd(matrices)
                del matrices
                for i, t in enumerate(dense):
                    keep(t, (U[i], S[i], V[i]))

        missing = []
        for t in range(ts.num_tasks):
            low_rank = ts.task_low_rank(t, key) if t in ts.low_rank_tasks else None
            low_rank_here = low_rank_here or low_rank is not None
            if low_rank is not None and low_rank.rank == 0:  # not adapted: nothing to decompose or cache
                computed[t] = low_rank.svd(self.device)
                hashes.append("")
                continue
            hashes.append(ts.matrix_hash(t, key))
            if not self.cache.contains(hashes[t]):
                missing.append(t)
        # as build_cache: at most batch_bytes of input per SVD, so a one-shot merge of a model with a huge
        # embedding (the CLI merges without building first) decomposes it one task at a time
        per_batch = max(1, self.batch_bytes // (m * n * 4))
        for start in range(0, len(missing), per_batch):
            compute(missing[start : start + per_batch])
        # hashing read θ₀ and every θ_t of this key; for a token embedding those pages are GBs, so let them go now
        (release_mapped_pages if m * n >= _LARGE_LAYER_ELEMENTS else release_mapped_pages_often)()

        def entry(t: int) -> linalg.SVD:
            found = computed.pop(t, None) or self.cache.get(hashes[t])
            if found is None:  # evicted since it was checked
                compute([t])
                found = computed.pop(t, None) or self.cache.get(hashes[t])
            if found is None:
                raise RuntimeError(f"{key}: the SVD of task {t} was evicted from the cache as soon as it was stored")
            return to_device(found, self.device)

        if low_rank_here:  # tasks of different widths (r triplets): padded to the widest; small, so all at once
            return stack_factors([entry(t) for t in range(ts.num_tasks)])
        return _stack_factors(entry, ts.num_tasks, self.device)

    def derived_factors(self, key: str, kind: str) -> linalg.SVD:
        """SVD of Σ_t Δ_t (``"sum"``) or of every Δ_t − mean Δ (``"centered"``), cached by content."""
        ts = self.taskset
        hashes = [ts.matrix_hash(t, key) for t in range(ts.num_tasks)]
        if kind == "sum":
            h = combine_hashes("sum", hashes)
            factors = self.cache.get(h)
            if factors is None:
                factors = linalg.thin_svd(ts.task_matrices(key).to(self.device).sum(0))
                self.cache.put(h, factors)
            return to_device(factors, self.device)
        if kind == "centered":
            keys = [combine_hashes(f"centered:{t}", hashes) for t in range(ts.num_tasks)]
            found = [self.cache.get(h) for h in keys]
            if any(f is None for f in found):
                stacked = ts.task_matrices(key).to(self.device)
                U, S, V = linalg.thin_svd(stacked - stacked.mean(0, keepdim=True))
                found = [(U[t], S[t], V[t]) for t in range(ts.num_tasks)]
                for h, f in zip(keys, found):
                    self.cache.put(h, f)
            return _stack_factors(lambda t: found[t], len(found), self.device)  # type: ignore[return-value]
        raise ValueError(f"unknown derived factorisation {kind!r}")

    def derived_layer_data(self, key: str, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` for (layer ``key``, ``name``), kept in memory across merges while it fits in
        ``derived_bytes`` (least recently used evicted first; an item larger than the budget is not kept)."""
        with self._lock:
            entry = self._derived.get((key, name))
            if entry is not None:
                self._derived.move_to_end((key, name))
                return entry[0]
            value = compute()
            size = _tensor_bytes(value)
            if size <= self.derived_bytes:
                while self._derived and self._derived_used + size > self.derived_bytes:
                    _, (_, freed) = self._derived.popitem(last=False)
                    self._derived_used -= freed
                self._derived[(key, name)] = (value, size)
                self._derived_used += size
            return value

    def release_memory(self, *, keep_merges: bool = False) -> None:
        """Drop what the engine holds in memory (SVD factors, derived layer data and, unless ``keep_merges``, the
        remembered merges) and hand the freed heap back to the OS. The disk cache stays, so the next merge reads
        its factors from there. The CLI calls this before evaluating a merge, which then has the memory to itself."""
        with self._lock:
            self.cache.clear_memory()
            self._derived.clear()
            self._derived_used = 0
            if not keep_merges:
                self._merges.clear()
        gc.collect()
        release_process_memory()

    def memory_used(self) -> dict[str, int]:
        """Bytes the engine holds in memory: ``factors`` (SVD cache), ``derived`` (layer data), ``merges``."""
        with self._lock:
            return {"factors": self.cache.memory_bytes_used(), "derived": self._derived_used,
                    "merges": sum(d.nbytes() for d in self._merges.values())}

    def cache_status(self) -> dict[str, int]:
        """How many per-task factor sets of this TaskSet are cached (hashing every task matrix once)."""
        ts = self.taskset
        total = ts.num_tasks * len(ts.matrix_keys)
        cached = sum(
            self._not_adapted(t, k) or self.cache.contains(ts.matrix_hash(t, k))
            for k in ts.matrix_keys for t in range(ts.num_tasks)
        )
        return {"cached": cached, "total": total}

    def _not_adapted(self, t: int, key: str) -> bool:
        """A LoRA task without an adapter on ``key`` (ΔW = 0: no factors to cache)."""
        ts = self.taskset
        if t not in ts.low_rank_tasks:
            return False
        low_rank = ts.task_low_rank(t, key)
        return low_rank is not None and low_rank.rank == 0

    def build_cache(self, *, keys: list[str] | None = None, progress: Progress | None = None) -> int:
        """Compute and store the SVD of every (task, matrix key) not yet cached; returns how many were computed.

        Missing matrices are grouped by shape and decomposed in batches of at most ``batch_bytes`` input;
        the previous batch is written to disk by two background threads while the next one is decomposed. On CUDA,
        Δ_t = θ_t − θ₀ is formed on the device. :attr:`last_build_stats` then holds the seconds of each phase.
        """
        with self._lock:
            return self._build_cache(keys, progress or _noop)

    def _build_cache(self, keys: list[str] | None, progress: Progress) -> int:
        ts = self.taskset
        keys = keys if keys is not None else ts.matrix_keys
        stats: dict[str, float] = defaultdict(float)
        clock = time.perf_counter
        started = clock()
        by_shape: dict[tuple[int, int], list[tuple[int, str, str]]] = defaultdict(list)
        low_rank_items: list[tuple[int, str, str]] = []  # LoRA tasks: decomposed from their factors
        for i, key in enumerate(keys):
            progress(i, len(keys), f"hashing {key}")
            release_mapped_pages_often()
            for t in range(ts.num_tasks):
                low_rank = ts.task_low_rank(t, key) if t in ts.low_rank_tasks else None
                if low_rank is not None and low_rank.rank == 0:
                    continue  # ΔW = 0 (module not adapted): nothing to cache
                h = ts.matrix_hash(t, key)
                if not self.cache.contains(h):
                    if low_rank is not None:
                        low_rank_items.append((t, key, h))
                    else:
                        by_shape[tuple(ts.base[key].shape)].append((t, key, h))  # type: ignore[index]
        stats["hash"] = clock() - started
        todo = sum(len(v) for v in by_shape.values()) + len(low_rank_items)
        done = 0
        progress(0, max(todo, 1), f"SVD of {todo} task matrices")
        on_cuda = self.device.type == "cuda"
        pending: deque[Future[None]] = deque()
        stats_lock = threading.Lock()

        @contextmanager
        def phase(name: str) -> Iterator[None]:
            begun = clock()
            try:
                yield
            finally:
                with stats_lock:
                    stats[name] += clock() - begun

        def write(h: str, factors: linalg.SVD, shape: tuple[int, int]) -> None:
            with phase("write_thread_s"):
                self.cache.put(h, factors, shape=shape)

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="svd-cache-writer") as writer:
            for t, key, h in low_rank_items:  # O((m + n)·r²) each: no batching needed
                with phase("svd"):
                    delta = ts.task_low_rank(t, key)
                    factors = delta.svd(self.device)  # type: ignore[union-attr]
                    factors = tuple(f.cpu() for f in factors)  # type: ignore[assignment]
                with phase("wait_for_writers"):
                    while len(pending) > 64:
                        pending.popleft().result()
                pending.append(writer.submit(write, h, factors, delta.shape))  # type: ignore[union-attr]
                done += 1
                progress(done, todo, f"SVD from LoRA factors {delta.shape[0]}×{delta.shape[1]}: {done}/{todo}")
            def per_batch_of(shape: tuple[int, int]) -> int:
                return max(1, self.batch_bytes // (shape[0] * shape[1] * 4))

            # On the CPU: one host buffer for every batch, filled in place (no per-matrix temporaries, no stacking
            # copy, no fresh pages per batch). On CUDA the subtraction runs on the device instead and the host only
            # streams θ_t to it: for ViT-L/14 × 20 on an H200 machine, 4.5 s against 20.6 s of filling on the host.
            largest = 0 if on_cuda else max(
                (min(len(items), per_batch_of(sh)) * sh[0] * sh[1] * 4 for sh, items in by_shape.items()), default=0)
            staging = torch.empty(largest, dtype=torch.uint8)
            for shape, items in by_shape.items():
                per_batch = per_batch_of(shape)
                for start in range(0, len(items), per_batch):
                    batch = items[start : start + per_batch]
                    dtypes = {ts.task_matrix_dtype(t, key) for t, key, _ in batch}
                    dtype = dtypes.pop() if len(dtypes) == 1 else torch.float64
                    with phase("fill"):
                        if on_cuda:
                            matrices = torch.empty((len(batch), *shape), dtype=dtype, device=self.device)
                            bases: dict[str, Tensor] = {}
                            for i, (t, key, _) in enumerate(batch):
                                if key not in bases:
                                    bases[key] = ts.base[key].to(self.device)
                                ts.task_matrix_into(t, key, matrices[i], base=bases[key])
                            del bases
                            torch.cuda.synchronize(self.device)
                        else:
                            nbytes = len(batch) * shape[0] * shape[1] * dtype.itemsize
                            if staging.numel() < nbytes:
                                del staging
                                staging = torch.empty(nbytes, dtype=torch.uint8)
                            matrices = staging[:nbytes].view(dtype).view(len(batch), *shape)
                            for i, (t, key, _) in enumerate(batch):
                                ts.task_matrix_into(t, key, matrices[i])
                        release_mapped_pages_often()
                    with phase("svd"):
                        U, S, V = linalg.thin_svd(matrices)
                        if on_cuda:
                            torch.cuda.synchronize(self.device)
                    with phase("to_host"):
                        if on_cuda:  # into pinned blocks that torch's host allocator hands back once written to disk
                            U, S, V = (torch.empty(f.shape, dtype=f.dtype, pin_memory=True).copy_(f, non_blocking=True)
                                       for f in (U, S, V))
                            torch.cuda.synchronize(self.device)
                        del matrices
                    # bounded: factors waiting for the disk never hold more than ~3 batches of memory (one matrix
                    # when a matrix alone fills a batch: the U of a token embedding is as large as the matrix)
                    with phase("wait_for_writers"):
                        while len(pending) > (3 * per_batch if per_batch > 1 else 0):
                            pending.popleft().result()
                    for i, (_, _, h) in enumerate(batch):
                        pending.append(writer.submit(write, h, (U[i], S[i], V[i]), shape))
                    done += len(batch)
                    progress(done, todo, f"SVD {shape[0]}×{shape[1]}: {done}/{todo}")
            del staging
            with phase("wait_for_writers"):
                while pending:
                    pending.popleft().result()
        stats["total"] = clock() - started
        self.last_build_stats = dict(stats)
        if todo:
            log.debug("build_cache: %d SVDs in %.1f s (%s)", todo, stats["total"],
                      ", ".join(f"{k} {v:.1f} s" for k, v in stats.items() if k != "total"))
        return todo

    def layer(self, key: str) -> CachedLayer:
        if key not in self.taskset.matrix_keys:
            raise KeyError(f"{key!r} is not a matrix parameter of this TaskSet")
        return CachedLayer(self, key)

    # -- merging ------------------------------------------------------------------------------------------
    def resolve(self, method: str | Method, params: Mapping[str, Any]) -> tuple[Method, float, dict[str, Any]]:
        """(method, alpha, other params) with defaults filled and ranges checked."""
        m = get_method(method) if isinstance(method, str) else method
        if "alpha" not in m.param_names:  # e.g. weight averaging: accepted everywhere, ignored there
            params = {k: v for k, v in params.items() if k != "alpha"}
        resolved = m.resolve_params(params, self.taskset.num_tasks)
        alpha = float(resolved.pop("alpha", 1.0))
        return m, alpha, resolved

    def merged_delta(
        self, method: str | Method, *, progress: Progress | None = None, **params: Any
    ) -> tuple[MergedDelta, float]:
        """The merge of ``method`` as Δ(α) = c0 + α·c1 for every key, remembered for the next alpha change."""
        m, alpha, rest = self.resolve(method, params)
        if m.kind != "merge":
            raise ValueError(f"{m.name} is a compression method: use Engine.compress")
        if m.alpha_form == "nonlinear":  # e.g. SVC: every alpha is its own merge
            rest = {**rest, "alpha": alpha}
        memo_key = (m.name, tuple(sorted(rest.items())))
        with self._lock:
            if memo_key in self._merges:
                self._merges.move_to_end(memo_key)
                return self._merges[memo_key], alpha
            delta = self._compute_delta(m, rest, progress or _noop)
            self._merges[memo_key] = delta
            while len(self._merges) > self.merges_kept:
                self._merges.popitem(last=False)
            return delta, alpha

    def _compute_delta(self, m: Method, params: dict[str, Any], progress: Progress) -> MergedDelta:
        ts = self.taskset
        out = MergedDelta()
        whole_model = getattr(m, "whole_model", None)  # SVC over a whole-model base (TIES, MagMax, DARE)
        if whole_model is not None and whole_model(params):
            out.constant = m.model_delta(self, params, progress)  # type: ignore[attr-defined]
            return out
        if m.model_fn is not None:
            slope = m.model_fn(ts.lazy_task_vectors(), alpha=1.0, progress=progress, **params)
            out.slope = {k: v.cpu() for k, v in slope.items()}
            return out
        assert m.layer_fn is not None
        n_keys = len(ts.keys)
        for i, key in enumerate(ts.keys):
            progress(i, n_keys, f"{m.display_name}: {key}")
            release_mapped_pages_often()
            if key in ts.matrix_keys:
                layer = CachedLayer(self, key)
                if m.alpha_form == "nonlinear":
                    out.constant[key] = m.layer_fn(layer, **params).cpu()
                elif m.alpha_form == "linear":
                    out.slope[key] = m.layer_fn(layer, alpha=1.0, **params).cpu()
                elif m.alpha_form == "affine":
                    f0 = m.layer_fn(layer, alpha=0.0, **params)
                    out.constant[key] = f0.cpu()
                    out.slope[key] = (m.layer_fn(layer, alpha=1.0, **params) - f0).cpu()
                else:
                    out.constant[key] = m.layer_fn(layer, alpha=1.0, **params).cpu()
            else:
                stacked = ts.task_matrices(key)
                rule = m.non_matrix_rule(params)
                if m.alpha_form == "nonlinear":
                    out.constant[key] = merge_non_matrix(rule, stacked, float(params["alpha"]))
                elif rule == "mean":
                    out.constant[key] = merge_non_matrix("mean", stacked, 1.0)
                else:
                    out.slope[key] = merge_non_matrix(rule, stacked, 1.0)
        progress(n_keys, n_keys, f"{m.display_name}: done")
        return out

    def merge(
        self,
        method: str | Method,
        *,
        alpha: float | None = None,
        progress: Progress | None = None,
        out: dict[str, Tensor] | None = None,
        **params: Any,
    ) -> dict[str, Tensor]:
        """Merged state dict θ₀ + Δ_method(α) with every key of the base model (integer buffers copied).

        ``alpha=None`` takes the method's paper default. Pass ``out`` (a previous result of the same shapes) to
        write in place: an alpha-only change is then one fused multiply-add per tensor with no allocation.
        """
        if alpha is not None:
            params["alpha"] = alpha
        delta, alpha_value = self.merged_delta(method, progress=progress, **params)
        return self.materialise(delta, alpha_value, out=out)

    def lazy_merge(self, method: str | Method, *, alpha: float | None = None, progress: Progress | None = None,
                   **params: Any) -> Mapping[str, Tensor]:
        """The merged state dict θ₀ + Δ_method(α) as a mapping that computes each key when it is read and keeps
        nothing: a whole-model merge written straight to disk (``merge … -o``) holds one layer at a time instead of
        the whole model. Each key equals :meth:`merge`'s. Methods that need the whole model at once (TIES, MagMax,
        DARE, SVC over them) return :meth:`merge`'s dict."""
        if alpha is not None:
            params["alpha"] = alpha
        m, alpha_value, rest = self.resolve(method, params)
        whole_model = getattr(m, "whole_model", None)
        if m.kind != "merge" or m.layer_fn is None or m.model_fn is not None or (whole_model and whole_model(rest)):
            return self.merge(method, progress=progress, **params)
        return _LazyMerge(self, m, alpha_value, rest, progress or _noop)

    def merged_key(self, m: Method, key: str, alpha: float, params: Mapping[str, Any]) -> Tensor:
        """θ₀ + Δ(α) of one key for a layer-wise method, in the base's dtype (what :meth:`materialise` gives)."""
        ts = self.taskset
        value = ts.base[key]
        if key not in ts.keys:
            return value
        if key in ts.matrix_keys:
            layer = CachedLayer(self, key)
            if m.alpha_form == "nonlinear":
                delta = m.layer_fn(layer, **{**params, "alpha": alpha})  # type: ignore[misc]
            elif m.alpha_form in ("linear", "affine"):
                delta = m.layer_fn(layer, alpha=alpha, **params)  # type: ignore[misc]
            else:
                delta = m.layer_fn(layer, alpha=1.0, **params)  # type: ignore[misc]
        else:
            rule = m.non_matrix_rule(dict(params))
            scale = float(alpha) if (m.alpha_form == "nonlinear" or rule != "mean") else 1.0
            delta = merge_non_matrix(rule, ts.task_matrices(key), scale)
        delta = delta.cpu()
        merged = value.to(delta.dtype) + delta
        return merged if merged.dtype == value.dtype else merged.to(value.dtype)

    def materialise(self, delta: MergedDelta, alpha: float, *, out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """θ₀ + c0 + α·c1 for every key, into ``out`` when given."""
        base = self.taskset.base
        result: dict[str, Tensor] = out if out is not None else {}
        for key, value in base.items():
            if key not in self.taskset.keys:
                result[key] = value
                continue
            target = result.get(key) if out is not None else None
            slope, constant = delta.slope.get(key), delta.constant.get(key)
            ref = value.to(slope.dtype if slope is not None else torch.float32)
            if target is None or target.shape != value.shape:
                target = torch.empty(value.shape, dtype=ref.dtype)
            if slope is not None:
                torch.add(ref, slope, alpha=alpha, out=target)
            else:
                target.copy_(ref)
            if constant is not None:
                target.add_(constant)
            result[key] = target if value.dtype == target.dtype else target.to(value.dtype)
        return result

    def compress(self, task: str | int, *, k_frac: float = 0.1, progress: Progress | None = None) -> dict[str, Tensor]:
        """TSV-C model of one task (TSV Eq. 7): θ₀ + top-k reconstruction of its Δ in every matrix layer and
        its full Δ elsewhere (the task is known, so nothing else changes)."""
        progress = progress or _noop
        ts = self.taskset
        t = ts.task_index(task)
        get_method("tsv_c").resolve_params({"k_frac": k_frac})
        result: dict[str, Tensor] = {}
        for i, (key, value) in enumerate(ts.base.items()):
            if key in ts.matrix_keys:
                delta = tsv_c(CachedLayer(self, key), task=t, k_frac=k_frac).cpu()
            elif key in ts.keys:
                delta = ts.task_matrix(t, key)
            else:
                result[key] = value
                continue
            result[key] = (value.to(delta.dtype) + delta).to(value.dtype)
            progress(i + 1, len(ts.base), f"TSV-C {ts.task_names[t]}: {key}")
        return result

    def finetuned(self, task: str | int) -> Mapping[str, Tensor]:
        return self.taskset.finetuned[self.taskset.task_names[self.taskset.task_index(task)]]

    def zeroshot(self) -> Mapping[str, Tensor]:
        return self.taskset.base


class _LazyMerge(Mapping[str, Tensor]):
    """:meth:`Engine.lazy_merge`: every key computed when read, nothing kept."""

    def __init__(self, engine: Engine, method: Method, alpha: float, params: dict[str, Any], progress: Progress) -> None:
        self._engine, self._method, self._alpha, self._params = engine, method, alpha, params
        self._progress = progress
        self._keys = list(engine.taskset.base.keys())
        self._read = 0

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._engine.taskset.base:
            raise KeyError(key)
        release_mapped_pages_often()
        value = self._engine.merged_key(self._method, key, self._alpha, self._params)
        self._read += 1
        self._progress(min(self._read, len(self._keys)), len(self._keys), f"{self._method.display_name}: {key}")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._engine.taskset.base
