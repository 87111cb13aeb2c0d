"""Data behind the dashboard's figures, computed from an :class:`~spectral.engine.Engine` (cached SVD factors).

Every function returns plain tabular data (a :class:`pandas.DataFrame`, tidy where possible) that a figure builder
in :mod:`spectral.figures` turns into a plot and that is exported as the figure's CSV. Pages never compute an SVD
or any math beyond glue: they call these functions.

Papers: TSV = Gargiulo et al. 2025 (Task Singular Vectors), Iso = Marczak et al. 2025 (No Task Left Behind),
AdaRank = Lee et al. 2025. Every SVD of a task matrix comes from the engine's cache (``engine.layer(key)``);
only merged matrices of one layer are decomposed here (``torch.linalg.svdvals``), which is cheap next to a merge.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from spectral import linalg
from spectral.engine import Engine
from spectral.errors import ParameterError
from spectral.metrics import (
    SarLayer,
    cosine_similarity_matrix,
    default_sti_rank,
    effective_ranks,
    energy_curve,
    layer_norms,
    merged_rank,
    nai,
    normalised_accuracy,
    pearson_r,
    sar_matrix,
    sar_to_merged,
    sti_blocks,
    sti_from_factors,
)
from spectral.methods import get_method
from spectral.methods.base import kept_rank
from spectral.methods.tsv import concatenated_top_k
from spectral.taskset import TaskSet, block_index, layer_kind

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: the merges whose spectra the Spectra page compares (Iso Fig. 1 and 7; TSV-M added)
SPECTRUM_METHODS: tuple[str, ...] = ("task_arithmetic", "iso_c", "iso_cts", "tsv_m")
#: the merges whose alignment the Alignment page compares (Iso Fig. 3a)
ALIGNMENT_METHODS: tuple[str, ...] = ("task_arithmetic", "iso_c")
#: the order of layer kinds inside a transformer block (TSV Fig. 6 and 14)
KIND_ORDER: tuple[str, ...] = ("in_proj", "out_proj", "c_fc", "c_proj")


def _noop(i: int, n: int, text: str) -> None:
    return None


# -- layers -------------------------------------------------------------------------------------------------------
def layer_label(key: str) -> str:
    """Short label of a parameter for axes: ``visual.transformer.resblocks.3.attn.in_proj_weight`` → ``3·in_proj``,
    ``visual.positional_embedding`` → ``pos_emb``, ``visual.proj`` → ``proj``."""
    block = block_index(key)
    kind = layer_kind(key)
    if kind == "positional_embedding":
        kind = "pos_emb"
    return f"{block}·{kind}" if block is not None else kind


def layers(taskset: TaskSet) -> pd.DataFrame:
    """One row per matrix parameter, in model order: key, label, block (−1 outside the blocks), kind, m, n, r."""
    rows = []
    for key in taskset.matrix_keys:
        m, n = (int(s) for s in taskset.base[key].shape)
        block = block_index(key)
        rows.append({"key": key, "label": layer_label(key), "block": -1 if block is None else block,
                     "kind": layer_kind(key), "m": m, "n": n, "r": min(m, n)})
    return pd.DataFrame(rows, columns=["key", "label", "block", "kind", "m", "n", "r"])


def resolve_layer(taskset: TaskSet, layer: str | int | None) -> str:
    """A matrix key from a key, a short label (``3·in_proj``), an index into ``matrix_keys`` or None (the first
    attention in_proj, the layer of TSV Fig. 3). Raises a ParameterError naming the valid labels."""
    keys = taskset.matrix_keys
    if not keys:
        raise ParameterError("this pool has no matrix parameters")
    if layer is None or layer == "":
        return next((k for k in keys if layer_kind(k) == "in_proj"), keys[0])
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not 0 <= layer < len(keys):
            raise ParameterError(f"layer index {layer} out of range: the pool has {len(keys)} matrix layers")
        return keys[layer]
    if layer in keys:
        return str(layer)
    by_label = {layer_label(k): k for k in keys}
    if layer in by_label:
        return by_label[str(layer)]
    raise ParameterError(f"no matrix layer {layer!r}; layers are {list(by_label)}")


def _with_layer_columns(df: pd.DataFrame, key_column: str = "key") -> pd.DataFrame:
    df.insert(1, "label", [layer_label(k) for k in df[key_column]])
    df.insert(2, "block", [(-1 if (b := block_index(k)) is None else b) for k in df[key_column]])
    df.insert(3, "kind", [layer_kind(k) for k in df[key_column]])
    return df


# -- task vectors -------------------------------------------------------------------------------------------------
def _task_matrix_stream(ts: TaskSet, keys: Sequence[str], progress: Progress, what: str,
                        label: Callable[[str], str]) -> Iterator[tuple[str, Tensor]]:
    """(key, stacked Δ_t of every task) one parameter at a time, reporting progress: streamed so a whole model's
    task vectors never sit in memory at once."""
    for i, key in enumerate(keys):
        progress(i, len(keys), f"{what}: {label(key)}")
        yield key, ts.task_matrices(key)


def task_vector_norms(engine: Engine, *, progress: Progress | None = None) -> pd.DataFrame:
    """Frobenius norm ‖Δ_t‖_F of every task in every matrix layer (long: key, label, block, kind, task, norm)."""
    ts = engine.taskset
    progress = progress or _noop
    keys = ts.matrix_keys
    norms = layer_norms(_task_matrix_stream(ts, keys, progress, "norms", layer_label))
    progress(len(keys), len(keys), "norms: done")
    rows = [{"key": k, "task": t, "norm": float(v[i])} for k, v in norms.items() for i, t in enumerate(ts.task_names)]
    return _with_layer_columns(pd.DataFrame(rows, columns=["key", "task", "norm"]))


def cosine_similarity(engine: Engine, *, progress: Progress | None = None) -> pd.DataFrame:
    """(T × T) cosine similarity of the flattened task vectors over every floating-point parameter (Iso Fig. 2a),
    streamed one parameter at a time; index and columns are the task names."""
    ts = engine.taskset
    progress = progress or _noop
    keys = ts.keys
    cos = cosine_similarity_matrix(_task_matrix_stream(ts, keys, progress, "cosine", str)).cpu().numpy()
    progress(len(keys), len(keys), "cosine: done")
    return pd.DataFrame(cos, index=pd.Index(ts.task_names, name="task"), columns=list(ts.task_names))


def task_summary(engine: Engine, *, energy: float = 0.95, progress: Progress | None = None) -> pd.DataFrame:
    """One row per task: global norm ‖τ_t‖, mean and max |cosine| to the other tasks (and which), mean effective
    rank and mean effective-rank fraction over the matrix layers (AdaRank Fig. 3)."""
    ts = engine.taskset
    progress = progress or _noop
    cos = cosine_similarity(engine, progress=lambda i, n, t: progress(i, 2 * n, t))
    norms = task_vector_norms(engine)
    ranks = effective_rank_table(engine, energy=energy)
    rows = []
    for t in ts.task_names:
        others = cos.loc[t].drop(t).abs() if ts.num_tasks > 1 else pd.Series(dtype=float)
        mine = ranks[ranks.task == t]
        total_sq = float((norms[norms.task == t].norm ** 2).sum())
        rows.append({
            "task": t,
            "matrix_norm": math.sqrt(total_sq),
            "mean_abs_cosine": float(others.mean()) if len(others) else math.nan,
            "max_abs_cosine": float(others.max()) if len(others) else math.nan,
            "most_similar": str(others.idxmax()) if len(others) else "",
            "mean_effective_rank": float(mine.effective_rank.mean()),
            "mean_effective_rank_fraction": float(mine.fraction.mean()),
        })
    progress(1, 1, "summary: done")
    return pd.DataFrame(rows)


# -- spectra ------------------------------------------------------------------------------------------------------
def merged_layer(engine: Engine, key: str, method: str, params: Mapping[str, Any] | None = None,
                 layer: Any = None) -> Tensor:
    """The merged delta of ONE layer from cached factors (alpha applied), for a per-layer method."""
    m, alpha, rest = engine.resolve(method, dict(params or {}))
    if m.layer_fn is None:
        raise ParameterError(f"{m.display_name} merges the whole model at once: no per-layer spectrum")
    return m.layer_fn(layer if layer is not None else engine.layer(key), alpha=alpha, **rest)


def _spectrum_rows(source: str, group: str, S: Tensor, energy: float) -> list[dict[str, Any]]:
    S = S.detach().to(torch.float64).cpu()
    curve = energy_curve(S)
    eff = int(effective_ranks(S, energy)) if S.numel() else 0
    return [{"source": source, "group": group, "index": i + 1, "sigma": float(S[i]), "energy": float(curve[i]),
             "effective_rank": eff} for i in range(S.numel())]


def layer_spectra(
    engine: Engine,
    layer: str | int | None = None,
    *,
    methods: Sequence[str] = SPECTRUM_METHODS,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    energy: float = 0.95,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Singular values of one layer's task matrices and of its merges (Iso Fig. 1 and 7; AdaRank Fig. 3).

    Long format: source (task name or method display name), group ("task" | "merge"), index (1-based), sigma,
    energy (cumulative fraction of Σσ²) and effective_rank (smallest k with energy ≥ ``energy``). Task spectra come
    from the SVD cache; each merge is computed for this layer alone and decomposed with ``svdvals``.
    """
    from spectral.methods import get_method

    ts = engine.taskset
    key = resolve_layer(ts, layer)
    progress = progress or _noop
    cached = engine.layer(key)
    _, S, _ = cached.task_svd()
    rows: list[dict[str, Any]] = []
    for t, name in enumerate(ts.task_names):
        rows += _spectrum_rows(name, "task", S[t], energy)
    for i, method in enumerate(methods):
        progress(i, len(methods), f"merging {method} for {layer_label(key)}")
        merged = merged_layer(engine, key, method, (params or {}).get(method), layer=cached)
        rows += _spectrum_rows(get_method(method).display_name, "merge", torch.linalg.svdvals(merged.double()), energy)
    progress(len(methods), len(methods), "spectra: done")
    return pd.DataFrame(rows, columns=["source", "group", "index", "sigma", "energy", "effective_rank"])


def effective_rank_table(engine: Engine, *, energy: float = 0.95, progress: Progress | None = None) -> pd.DataFrame:
    """Effective rank (AdaRank Fig. 3: smallest k whose top-k σ² hold ≥ ``energy`` of Σσ²) of every task matrix.

    Long: key, label, block, kind, task, effective_rank, r, fraction (= effective_rank / r).
    """
    ts = engine.taskset
    progress = progress or _noop
    rows = []
    keys = ts.matrix_keys
    for i, key in enumerate(keys):
        progress(i, len(keys), f"effective rank: {layer_label(key)}")
        _, S, _ = engine.layer(key).task_svd()
        ranks = effective_ranks(S, energy).cpu()
        r = min(ts.base[key].shape)  # not S's width: a LoRA task's factors hold only its r triplets
        for t, name in enumerate(ts.task_names):
            rows.append({"key": key, "task": name, "effective_rank": int(ranks[t]), "r": r,
                         "fraction": int(ranks[t]) / r if r else math.nan})
    progress(len(keys), len(keys), "effective rank: done")
    return _with_layer_columns(pd.DataFrame(rows, columns=["key", "task", "effective_rank", "r", "fraction"]))


def interpolation(
    engine: Engine,
    layer: str | int | None = None,
    *,
    betas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    eps: float = 0.05,
) -> pd.DataFrame:
    """Spectra on the path from Task Arithmetic to Iso-C (Iso Eq. 15, Fig. 4a): Σ_β = (1 − β) Σ_TA + β σ̄ 1.

    Σ_TA are the singular values of Σ_t Δ_t (cached) and σ̄ their mean, both at α = 1. Long: beta, index, sigma,
    k_M (Iso Eq. 6 on Σ_β with ``eps``; the dashed lines of Fig. 4a).
    """
    ts = engine.taskset
    key = resolve_layer(ts, layer)
    _, S, _ = engine.layer(key).sum_svd()
    S = S.detach().to(torch.float64).cpu()
    flat = torch.full_like(S, float(S.mean()))
    rows = []
    for beta in betas:
        if not 0.0 <= float(beta) <= 1.0:
            raise ParameterError(f"interpolation: β = {beta} must lie in [0, 1]")
        S_beta = (1.0 - beta) * S + beta * flat
        k = merged_rank(S_beta, eps)
        rows += [{"beta": float(beta), "index": i + 1, "sigma": float(S_beta[i]), "k_M": k} for i in range(S.numel())]
    return pd.DataFrame(rows, columns=["beta", "index", "sigma", "k_M"])


# -- interference (STI) ---------------------------------------------------------------------------------------------
def sti_rank(r: int, num_tasks: int, k_frac: float | None) -> int:
    """Per-task rank used for STI: TSV's ``int(r/T)`` when ``k_frac`` is None, else ``max(1, int(k_frac · r))``."""
    if k_frac is None:
        return default_sti_rank(r, num_tasks)
    if not 0.0 < float(k_frac) <= 1.0:
        raise ParameterError(f"STI: k fraction {k_frac} must lie in (0, 1]")
    return linalg.rank_from_fraction(float(k_frac), r)


def sti_per_layer(engine: Engine, *, k_frac: float | None = None, progress: Progress | None = None) -> pd.DataFrame:
    """Singular Task Interference (TSV Eq. 6, un-normalised entrywise L1) of every matrix layer (TSV Fig. 6, 14).

    Long: key, label, block, kind, k, sti. ``k_frac=None`` → k = int(r/T) per layer (TSV's operating point).
    """
    ts = engine.taskset
    progress = progress or _noop
    rows = []
    keys = ts.matrix_keys
    for i, key in enumerate(keys):
        progress(i, len(keys), f"STI: {layer_label(key)}")
        U, S, V = engine.layer(key).task_svd()
        k = min(sti_rank(min(ts.base[key].shape), ts.num_tasks, k_frac), int(S.shape[-1]))
        rows.append({"key": key, "k": k, "sti": sti_from_factors(U, S, V, k)})
    progress(len(keys), len(keys), "STI: done")
    return _with_layer_columns(pd.DataFrame(rows, columns=["key", "k", "sti"]))


def sti_grid(per_layer: pd.DataFrame) -> pd.DataFrame:
    """STI per layer pivoted to blocks × layer kinds (TSV Fig. 6/14 heatmap). Matrices outside the transformer
    blocks (positional embedding, proj) get their own rows, with their value in an "other" column."""
    inside = per_layer[per_layer.block >= 0]
    grid = inside.pivot_table(index="block", columns="kind", values="sti", aggfunc="sum")
    grid = grid[[k for k in KIND_ORDER if k in grid.columns] + [k for k in grid.columns if k not in KIND_ORDER]]
    grid.index = [f"block {b}" for b in grid.index]
    grid.columns = [str(c) for c in grid.columns]
    outside = per_layer[per_layer.block < 0]
    if len(outside):
        grid["other"] = math.nan
        first = pd.DataFrame([{"other": r.sti} for r in outside.itertuples() if r.kind == "positional_embedding"],
                             index=[r.label for r in outside.itertuples() if r.kind == "positional_embedding"])
        last = pd.DataFrame([{"other": r.sti} for r in outside.itertuples() if r.kind != "positional_embedding"],
                            index=[r.label for r in outside.itertuples() if r.kind != "positional_embedding"])
        grid = pd.concat([first, grid, last]).reindex(columns=grid.columns)
    grid.index.name = "layer"
    return grid


def sti_block_matrices(engine: Engine, layer: str | int | None = None, *, k_frac: float | None = None) -> pd.DataFrame:
    """UᵀU and VᵀV of the concatenated top-k task singular vectors of one layer (TSV Fig. 3), as a long table:
    matrix ("UᵀU" | "VᵀV"), row, col, row_task, col_task, value. Diagonal blocks are identities."""
    ts = engine.taskset
    key = resolve_layer(ts, layer)
    cached = engine.layer(key)
    U, S, V = cached.task_svd()
    k = min(sti_rank(min(ts.base[key].shape), ts.num_tasks, k_frac), int(S.shape[-1]))
    blocks = sti_blocks((U, S, V), k)
    size = blocks.uu.shape[0]
    owner = np.repeat(np.array(ts.task_names, dtype=object), k)
    rows_idx, cols_idx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    frames = []
    for name, mat in (("UᵀU", blocks.uu), ("VᵀV", blocks.vv)):
        frames.append(pd.DataFrame({
            "matrix": name, "row": rows_idx.ravel(), "col": cols_idx.ravel(),
            "row_task": owner[rows_idx.ravel()], "col_task": owner[cols_idx.ravel()],
            "value": mat.detach().cpu().numpy().ravel(),
        }))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update({"k": k, "key": key, "tasks": list(ts.task_names)})
    return out


def block_pair(blocks: pd.DataFrame, matrix: str, task_a: str, task_b: str) -> pd.DataFrame:
    """The (k × k) block of ``matrix`` between two tasks (TSV Fig. 3 zoom): index = task_a's singular vector
    number, columns = task_b's."""
    sel = blocks[(blocks.matrix == matrix) & (blocks.row_task == task_a) & (blocks.col_task == task_b)]
    if sel.empty:
        raise ParameterError(f"no {matrix} block between {task_a!r} and {task_b!r}")
    grid = sel.pivot(index="row", columns="col", values="value")
    grid.index = [f"{task_a} {i + 1}" for i in range(grid.shape[0])]
    grid.columns = [f"{task_b} {j + 1}" for j in range(grid.shape[1])]
    return grid


def _sti_concatenated(U: Tensor, S: Tensor, V: Tensor) -> float:
    """‖(UᵀU − I) diag(S) (VᵀV − I)‖_1 of concatenated factors, in float64 (TSV Eq. 6)."""
    U, S, V = U.to(torch.float64), S.to(torch.float64), V.to(torch.float64)
    eye = torch.eye(U.shape[1], dtype=torch.float64, device=U.device)
    return float((((U.mT @ U - eye) * S.unsqueeze(0)) @ (V.mT @ V - eye)).abs().sum())


def sti_before_after(engine: Engine, *, k_frac: float | None = None, progress: Progress | None = None) -> pd.DataFrame:
    """STI of the task matrices' top-k singular vectors before and after TSV-M's Procrustes orthogonalisation
    (TSV Fig. 8, per layer). k = int(k_frac · r), default 1/T as TSV-M. After orthogonalisation UᵀU = VᵀV = I
    whenever T·k ≤ r, so the "after" column measures what TSV-M leaves (round-off, or the rank-r part otherwise).

    Long: key, label, block, kind, k, before, after.
    """
    ts = engine.taskset
    progress = progress or _noop
    rows = []
    keys = ts.matrix_keys
    frac = float(k_frac) if k_frac is not None else 1.0 / ts.num_tasks
    for i, key in enumerate(keys):
        progress(i, len(keys), f"STI before/after TSV-M: {layer_label(key)}")
        U, S, V = engine.layer(key).task_svd()
        k = min(linalg.rank_from_fraction(frac, min(ts.base[key].shape)), int(S.shape[-1]))
        U_cat, S_cat, V_cat = concatenated_top_k(U, S, V, k)
        before = _sti_concatenated(U_cat, S_cat, V_cat)
        after = (_sti_concatenated(linalg.polar_factor(U_cat), S_cat, linalg.polar_factor(V_cat))
                 if S_cat.numel() else 0.0)
        rows.append({"key": key, "k": k, "before": before, "after": after})
    progress(len(keys), len(keys), "STI before/after: done")
    return _with_layer_columns(pd.DataFrame(rows, columns=["key", "k", "before", "after"]))


# -- alignment (SAR) ----------------------------------------------------------------------------------------------
def _ta_sar_layers(engine: Engine) -> Iterable[SarLayer]:
    ts = engine.taskset
    for key in ts.matrix_keys:
        cached = engine.layer(key)
        U_sum, S_sum, _ = cached.sum_svd()
        yield SarLayer(task_matrices=cached.task_matrices, task_left=cached.task_svd()[0],
                       merged_singular_values=S_sum, merged_left=U_sum, name=layer_label(key))


def sar_avg_matrix(
    engine: Engine, *, eps: float = 0.05, k_rule: str = "paper", progress: Progress | None = None
) -> pd.DataFrame:
    """Pairwise SAR_avg(Δ_i, Δ_j; k_TA) over the matrix layers (Iso Eq. 5-6, Fig. 3b): row = source task, column =
    target task; k_M from the Task Arithmetic merge of each layer (scale-invariant, so α does not matter)."""
    ts = engine.taskset
    mat = sar_matrix(_ta_sar_layers(engine), eps=eps, k_rule=k_rule, progress=progress,  # type: ignore[arg-type]
                     num_layers=len(ts.matrix_keys))
    return pd.DataFrame(mat.cpu().numpy(), index=pd.Index(ts.task_names, name="source"), columns=list(ts.task_names))


def sar_to_merge(
    engine: Engine,
    method: str,
    params: Mapping[str, Any] | None = None,
    *,
    eps: float = 0.05,
    k_rule: str = "paper",
    progress: Progress | None = None,
) -> pd.Series:
    """SAR_avg(Δ_t, Δ_M; k_M) of every task against a merge, averaged over matrix layers (Iso Fig. 3a x-axis).

    Task Arithmetic and Iso-C share Σ_t Δ_t's left singular vectors, so they read the cached SVD of the sum;
    other per-layer methods merge each layer and decompose it.
    """
    ts = engine.taskset
    keys = ts.matrix_keys

    def layers_for() -> Iterable[SarLayer]:
        for key in keys:
            cached = engine.layer(key)
            if method in ("task_arithmetic", "iso_c"):
                U_sum, S_sum, _ = cached.sum_svd()
                if method == "iso_c":  # the method's own rank cut (issue 28), default from its Param
                    cut = get_method("iso_c").resolve_params(
                        {k: v for k, v in (params or {}).items() if k == "rank_cut"})["rank_cut"]
                    keep = kept_rank(S_sum, cached.shape, str(cut))
                    U_sum, S_sum = U_sum[:, :keep], torch.full_like(S_sum[:keep], float(S_sum.mean()))
                yield SarLayer(task_matrices=cached.task_matrices, merged_left=U_sum, merged_singular_values=S_sum,
                               name=layer_label(key))
            else:
                merged = merged_layer(engine, key, method, params, layer=cached)
                yield SarLayer(task_matrices=cached.task_matrices, merged=merged, name=layer_label(key))

    values = sar_to_merged(layers_for(), eps=eps, k_rule=k_rule, progress=progress,  # type: ignore[arg-type]
                           num_layers=len(keys))
    return pd.Series(values.cpu().numpy(), index=pd.Index(ts.task_names, name="task"), name="sar_avg")


# -- accuracy ------------------------------------------------------------------------------------------------------
def accuracy_table(
    merged: Mapping[str, Mapping[str, float]],
    zeroshot: Mapping[str, float],
    finetuned: Mapping[str, float],
    metrics: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-task absolute accuracy, normalised accuracy (acc / acc_ft) and NAI (Iso Eq. 4) of each model.

    ``merged`` maps a model label (e.g. "TSV-M") to its per-task accuracies. Long: model, task, accuracy,
    normalised, nai, metric; zero-shot and fine-tuned rows included (model "Zero-shot" / "Fine-tuned").
    ``metrics`` names each task's metric (``pool.metric``: "accuracy", or "mcc" for CoLA, whose "accuracy" column
    then holds Matthews correlation, as the papers' GLUE tables mix them); default "accuracy".
    """
    metrics = metrics or {}
    rows = []
    models = {"Zero-shot": zeroshot, **merged, "Fine-tuned": finetuned}
    for label, acc in models.items():
        norm = normalised_accuracy(acc, finetuned).per_task
        gain = nai(acc, finetuned, zeroshot).per_task
        for task in acc:
            rows.append({"model": label, "task": task, "accuracy": float(acc[task]),
                         "normalised": norm[task], "nai": gain[task], "metric": metrics.get(task, "accuracy")})
    return pd.DataFrame(rows, columns=["model", "task", "accuracy", "normalised", "nai", "metric"])


def accuracy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute accuracy, normalised accuracy and NAI per model (TSV Tab. 1-2, Iso Tab. 1), in table order.
    Tables of subsample estimates (:func:`with_intervals`) also get ``pm``: the half-width (%) of a 95 % normal
    interval of the mean over tasks (:func:`spectral.metrics.estimate.mean_interval_halfwidth`)."""
    order = list(dict.fromkeys(table.model))
    out = table.groupby("model", sort=False)[["accuracy", "normalised", "nai"]].mean().reindex(order)
    if "subsample" in table and (table.subsample > 0).any():
        from spectral.metrics.estimate import Z95, mean_interval_halfwidth

        def halfwidth(sel: pd.DataFrame) -> float:
            if "metric" not in sel or (sel.metric == "accuracy").all():
                return 100.0 * mean_interval_halfwidth(list(sel.accuracy / 100.0), [int(n) for n in sel.n])
            # a score that is not a proportion (MCC, a normalised token-loss score): its standard error from its
            # own 95 % interval, (hi - lo) / (2 z); accuracies keep p(1 - p) / n; all in percent
            var = [a * (100.0 - a) / n if m == "accuracy" and n > 0 else ((h - lo) / (2 * Z95)) ** 2
                   for a, n, m, lo, h in zip(sel.accuracy, sel.n, sel.metric, sel.lo, sel.hi)]
            return Z95 * math.sqrt(sum(var)) / len(var) if var else math.nan

        pm = {m: halfwidth(sel) if (sel.subsample > 0).all() else math.nan
              for m, sel in table.groupby("model", sort=False)}
        out["pm"] = [pm.get(m, math.nan) for m in out.index]
    return out.reset_index()


def accuracy_display(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean table, per-task table) as strings for the merge lab: "71.2 ± 3.1" where a number is a subsample
    estimate (± is half the 95 % Wilson interval's width, which is not quite symmetric: the CSV has ``lo`` and
    ``hi``), plain "71.2" where it rests on the whole split."""
    summary = accuracy_summary(table)
    mean = pd.DataFrame({"model": summary.model})
    pm = summary["pm"] if "pm" in summary else pd.Series([math.nan] * len(summary))
    mean["accuracy"] = [f"{a:.2f}" + (f" ± {h:.2f}" if not math.isnan(h) else "") for a, h in zip(summary.accuracy, pm)]
    mean["normalised"] = [f"{v:.3f}" for v in summary.normalised]
    mean["nai"] = [f"{v:.3f}" for v in summary.nai]
    has_ci = "subsample" in table
    cells = {}
    for row in table.itertuples():
        text = f"{row.accuracy:.1f}"
        if has_ci and row.subsample > 0 and not math.isnan(row.lo):
            text += f" ± {(row.hi - row.lo) / 2:.1f}"
        cells[(row.task, row.model)] = text
    models = list(dict.fromkeys(table.model))
    tasks = list(dict.fromkeys(table.task))
    wide = pd.DataFrame([[cells.get((t, m), "") for m in models] for t in tasks], index=pd.Index(tasks, name="task"),
                        columns=models)
    return mean, wide


def with_intervals(table: pd.DataFrame, results: Mapping[str, Any]) -> pd.DataFrame:
    """An :func:`accuracy_table` with, per row, ``n`` (images the number rests on), ``lo`` / ``hi`` (95 % Wilson
    interval, %) and ``subsample`` (0: the whole split), from each model's stored result (by label); rows of
    other models (stored adaptation results) get NaN."""
    out = table.copy()
    n, lo, hi, sub = [], [], [], []
    for model, task in zip(out.model, out.task):
        r = results.get(model)
        if r is None or task not in r.accuracies:
            n.append(math.nan), lo.append(math.nan), hi.append(math.nan), sub.append(0)
            continue
        a, b = r.intervals()[task]
        n.append(r.counts.get(task, 0)), lo.append(100.0 * a), hi.append(100.0 * b), sub.append(r.key.subsample)
    out["n"], out["lo"], out["hi"], out["subsample"] = n, lo, hi, sub
    return out


def alignment_points(
    sar: Mapping[str, pd.Series], accuracies: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, float]]:
    """SAR_avg(Δ_t, Δ_M) against NAI(θ_M, θ_t; θ_0) per task and merge (Iso Fig. 3a), and Pearson's r per merge.

    ``sar`` maps a model label to its per-task SAR_avg; ``accuracies`` is an :func:`accuracy_table`.
    """
    rows, corr = [], {}
    for label, series in sar.items():
        sel = accuracies[accuracies.model == label].set_index("task")
        points = [{"model": label, "task": t, "sar_avg": float(series[t]), "nai": float(sel.loc[t, "nai"])}
                  for t in series.index if t in sel.index]
        rows += points
        try:
            corr[label] = pearson_r([p["sar_avg"] for p in points], [p["nai"] for p in points])
        except (ParameterError, ValueError):
            corr[label] = math.nan
    return pd.DataFrame(rows, columns=["model", "task", "sar_avg", "nai"]), corr
