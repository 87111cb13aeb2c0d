"""Every dashboard figure by name: default settings, how its data is computed from an open pool (any
:class:`~spectral.figures.source.FigureSource`: the app's workspace, or a test's), how it is drawn.

The same entry serves the page (which shows it and offers the downloads) and ``python -m spectral figure``
(which regenerates it headlessly from the settings YAML the page exported), so the two cannot drift apart.

A settings document (the exported YAML)::

    figure: spectra            # a name in FIGURES
    pool: zoo-8                # pool spec (demo zoo, pool YAML or checkpoint folder)
    settings: {layer: 0·in_proj, methods: [task_arithmetic, iso_c], log_y: true, ...}
    export: {columns: one}     # one- or two-column paper width (height_in optional)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from spectral import analysis
from spectral.figures.source import FigureSource, Progress, SourceOpener, freeze
from spectral.errors import ParameterError
from spectral.figures import accuracy as acc_fig
from spectral.figures import alignment as align_fig
from spectral.figures import interference as sti_fig
from spectral.figures import spectra as spec_fig
from spectral.figures import sweeps as sweep_fig
from spectral.figures import taskvectors as tv_fig
from spectral.figures.export import file_stem, timestamp
from spectral.methods import get_method


@dataclass
class FigureData:
    """A figure's data: the table exported as CSV, and small derived values (k, Pearson's r, task names)."""

    table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FigureKind:
    name: str
    title: str
    source: str
    defaults: Mapping[str, Any]
    compute: Callable[[FigureSource, dict[str, Any], Progress], FigureData]
    build: Callable[[FigureData, dict[str, Any]], go.Figure]
    #: settings that change only the drawing (not the data): left out of the memo key
    view: tuple[str, ...] = ()
    #: the data needs models evaluated on every task (slow on real pools)
    evaluates: bool = False
    #: default export width
    columns: str = "one"


FIGURES: dict[str, FigureKind] = {}


def _register(kind: FigureKind) -> FigureKind:
    FIGURES[kind.name] = kind
    return kind


def get_kind(name: str) -> FigureKind:
    try:
        return FIGURES[name]
    except KeyError:
        raise ParameterError(f"unknown figure {name!r}; figures are {sorted(FIGURES)}") from None


def resolve_settings(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The kind's defaults overridden by ``settings``; unknown names are an error naming the valid ones."""
    kind = get_kind(name)
    given = dict(settings or {})
    unknown = sorted(set(given) - set(kind.defaults))
    if unknown:
        raise ParameterError(
            f"figure {name!r}: unknown setting(s) {unknown}; valid settings are {sorted(kind.defaults)}")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kind.defaults.items()}
    out.update(given)
    return out


def data_key(name: str, settings: Mapping[str, Any]) -> Hashable:
    kind = get_kind(name)
    return ("figure", name, freeze({k: v for k, v in settings.items() if k not in kind.view}))


def compute(name: str, ws: FigureSource, settings: Mapping[str, Any], progress: Progress | None = None) -> FigureData:
    """The figure's data for an open workspace (not memoised: see :func:`compute_cached`)."""
    resolved = resolve_settings(name, settings)
    return get_kind(name).compute(ws, resolved, progress or (lambda i, n, t: None))


def compute_cached(name: str, ws: FigureSource, settings: Mapping[str, Any],
                   progress: Progress | None = None) -> FigureData:
    resolved = resolve_settings(name, settings)
    return ws.cached(data_key(name, resolved), lambda p: get_kind(name).compute(ws, resolved, p), progress)


def build(name: str, data: FigureData, settings: Mapping[str, Any]) -> go.Figure:
    return get_kind(name).build(data, resolve_settings(name, settings))


def settings_document(name: str, pool: str, settings: Mapping[str, Any], *, columns: str | None = None,
                      height_in: float | None = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the YAML download holds: enough to regenerate the figure with ``python -m spectral figure``."""
    kind = get_kind(name)
    export: dict[str, Any] = {"columns": columns or kind.columns}
    if height_in is not None:
        export["height_in"] = height_in
    doc: dict[str, Any] = {
        "figure": name, "title": kind.title, "source": kind.source, "pool": pool,
        "settings": resolve_settings(name, settings), "export": export, "created": timestamp(),
    }
    if meta:
        doc["derived"] = {k: v for k, v in meta.items() if k not in ("tasks",)}
    return doc


#: short names of method parameters in file names
_PARAM_SHORT = {"alpha": "a", "k_frac": "k", "common_frac": "cf", "orthogonalisation": "orth", "density": "d",
                "svc_alpha": "asvc", "tall_lambda": "lam", "min_tasks": "min"}


def _is_default(param: Any, value: Any, num_tasks: int | None) -> bool:
    """Whether ``value`` is the parameter's declared default (or its task-count default, also as the slider
    rounds it to its step)."""
    candidates = [param.default_value(num_tasks)]  # the static default when T is unknown
    for default in list(candidates):
        if param.step and isinstance(default, (int, float)) and not isinstance(default, bool):
            candidates.append(round(float(default) / float(param.step)) * float(param.step))
    for default in candidates:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(default, (int, float)) \
                and not isinstance(default, bool):
            if math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=1e-9):
                return True
        elif value == default:
            return True
    return False


def download_stem(name: str, pool: str, settings: Mapping[str, Any], meta: Mapping[str, Any] | None = None, *,
                  num_tasks: int | None = None) -> str:
    """File name (without suffix) of a figure's downloads: kind, pool, the layer drawn and every setting that
    differs from the kind's defaults, e.g. ``spectra-zoo-8-layer=3.mlp.c_fc-normalise=on``.

    Method parameters are written per method and only where they differ from the method's declared defaults
    (``radar-zoo-8-tsvm.k=0.2``); the STI figures always name their rank (``k=r_T`` for TSV's default k = r/T).
    A hash replaces parts only when the name would pass :data:`spectral.figures.export.MAX_STEM` characters."""
    kind = get_kind(name)
    resolved = resolve_settings(name, settings)
    if num_tasks is None and meta and isinstance(meta.get("tasks"), (list, tuple)):
        num_tasks = len(meta["tasks"])
    state: dict[str, Any] = {}
    if meta and meta.get("layer"):
        state["layer"] = meta["layer"]
    for key, value in resolved.items():
        if key == "layer" and "layer" in state:
            continue
        if key == "params" and isinstance(value, Mapping):
            state.update(_method_param_state(value, num_tasks))
            continue
        if key == "adapted" and value:
            # adapted models by ``<run_id>@<step>``: the run id's first 6 characters name it, as the pages do
            state[key] = [f"{str(ref).split('@')[0][:6]}@{str(ref).split('@')[-1]}" for ref in value]
            continue
        if key == "k_frac" and value is None:
            state["k"] = "r/T"  # TSV's default rank, k = int(r/T): still a state worth naming (issue 29)
            continue
        default = kind.defaults.get(key)
        if freeze(value) != freeze(list(default) if isinstance(default, tuple) else default):
            state[key] = value
    return file_stem(name, pool, state)


def _method_param_state(params: Mapping[str, Any], num_tasks: int | None) -> dict[str, Any]:
    """``{"tsvm.k": 0.2, "isocts.cf": 0.6}``: each method's parameters that differ from its declared defaults."""
    from spectral.figures.export import short_name
    from spectral.methods import REGISTRY

    out: dict[str, Any] = {}
    for method, values in params.items():
        if not isinstance(values, Mapping):
            out[short_name(method)] = values
            continue
        declared = {p.name: p for p in REGISTRY[method].params} if method in REGISTRY else {}
        for pname, value in values.items():
            if pname in declared and _is_default(declared[pname], value, num_tasks):
                continue
            out[f"{short_name(method)}.{_PARAM_SHORT.get(pname, pname)}"] = value
    return out


# -- helpers ---------------------------------------------------------------------------------------------------------
def _engine(ws: FigureSource):
    if ws.engine is None:
        ws.open()
    return ws.engine


def _params(settings: Mapping[str, Any], method: str) -> dict[str, Any]:
    params = settings.get("params") or {}
    if not isinstance(params, Mapping):
        raise ParameterError("settings 'params' must map method names to parameter mappings")
    return dict(params.get(method) or {})


def _display(method: str) -> str:
    return get_method(method).display_name


def _check_methods(methods: Sequence[str], *, per_layer: bool = False) -> list[str]:
    out = []
    for m in methods:
        method = get_method(m)  # UnknownMethodError names the valid ones
        if method.kind != "merge":
            raise ParameterError(f"{method.display_name} is not a merging method")
        if per_layer and method.layer_fn is None:
            raise ParameterError(f"{method.display_name} merges the whole model at once: no per-layer view")
        out.append(m)
    return out


def _pair(ws: FigureSource, settings: Mapping[str, Any]) -> tuple[str, str]:
    tasks = ws.task_names
    default = (tasks[2], tasks[3]) if len(tasks) >= 4 else (tasks[0], tasks[min(1, len(tasks) - 1)])
    a = settings.get("task_a") or default[0]
    b = settings.get("task_b") or default[1]
    for t in (a, b):
        if t not in tasks:
            raise ParameterError(f"no task named {t!r}; tasks are {tasks}")
    return str(a), str(b)


def _matrix_name(value: str) -> str:
    names = {"U": "UᵀU", "UtU": "UᵀU", "UᵀU": "UᵀU", "V": "VᵀV", "VtV": "VᵀV", "VᵀV": "VᵀV"}
    if value not in names:
        raise ParameterError(f"matrix must be 'U' or 'V', got {value!r}")
    return names[value]


def _k_frac(settings: Mapping[str, Any]) -> float | None:
    value = settings.get("k_frac")
    return None if value in (None, "", "default") else float(value)


# -- task vectors ----------------------------------------------------------------------------------------------------
def _norms(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    return FigureData(analysis.task_vector_norms(_engine(ws), progress=p))


def _cosine(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    return FigureData(analysis.cosine_similarity(_engine(ws), progress=p))


def _norms_view(d: FigureData, s: dict[str, Any]) -> go.Figure:
    table = d.table
    if s.get("blocks"):
        lo, hi = (int(b) for b in s["blocks"])
        table = table[(table.block < 0) | ((table.block >= lo) & (table.block <= hi))]
    return tv_fig.norms_figure(table, log_y=bool(s["log_y"]))


_register(FigureKind(
    "task_norms", "Per-layer task-vector norms", "‖Δₜ‖_F per matrix layer", {"log_y": False, "blocks": None},
    _norms, _norms_view, view=("log_y", "blocks"), columns="two",
))
_register(FigureKind(
    "cosine", "Cosine similarity of task vectors", "Iso Fig. 2a", {}, _cosine,
    lambda d, s: tv_fig.cosine_figure(d.table),
))


# -- spectra ---------------------------------------------------------------------------------------------------------
SPECTRA_DEFAULTS = {"layer": None, "methods": list(analysis.SPECTRUM_METHODS), "params": {}, "energy": 0.95}


def _spectra(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    engine = _engine(ws)
    methods = _check_methods(s["methods"], per_layer=True)
    key = analysis.resolve_layer(engine.taskset, s["layer"])
    energy = float(s["energy"])
    if not 0.0 < energy <= 1.0:
        raise ParameterError(f"energy threshold {energy} must lie in (0, 1]")
    table = analysis.layer_spectra(engine, key, methods=methods, params={m: _params(s, m) for m in methods},
                                   energy=energy, progress=p)
    return FigureData(table, {"layer": analysis.layer_label(key), "key": key})


_register(FigureKind(
    "spectra", "Singular-value spectra of one layer", "Iso Fig. 1 and 7",
    {**SPECTRA_DEFAULTS, "log_y": True, "normalise": False}, _spectra,
    lambda d, s: spec_fig.spectra_figure(d.table, log_y=bool(s["log_y"]), normalise=bool(s["normalise"])),
    view=("log_y", "normalise"),
))
_register(FigureKind(
    "energy", "Cumulative energy and effective rank", "AdaRank Fig. 3", dict(SPECTRA_DEFAULTS), _spectra,
    lambda d, s: spec_fig.energy_figure(d.table, energy=float(s["energy"])),
))


def _interpolation(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    engine = _engine(ws)
    key = analysis.resolve_layer(engine.taskset, s["layer"])
    beta = float(s["beta"])
    betas = sorted({0.0, beta, 1.0})
    table = analysis.interpolation(engine, key, betas=betas, eps=float(s["eps"]))
    k = int(table[table.beta == beta].k_M.iloc[0])
    return FigureData(table, {"layer": analysis.layer_label(key), "key": key, "k_M": k})


_register(FigureKind(
    "interpolation", "Task Arithmetic → Iso-C interpolation", "Iso Eq. 15, Fig. 4a",
    {"layer": None, "beta": 0.5, "eps": 0.05, "log_y": True}, _interpolation,
    lambda d, s: spec_fig.interpolation_figure(d.table, beta=float(s["beta"]), log_y=bool(s["log_y"])),
    view=("log_y",),
))


def _effective_rank(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    return FigureData(analysis.effective_rank_table(_engine(ws), energy=float(s["energy"]), progress=p))


_register(FigureKind(
    "effective_rank", "Effective rank per layer and task", "AdaRank Fig. 3",
    {"energy": 0.95, "value": "fraction"}, _effective_rank,
    lambda d, s: spec_fig.effective_rank_heatmap(d.table, value=str(s["value"])), view=("value",),
))


# -- interference ------------------------------------------------------------------------------------------------------
def _sti_layers(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    per_layer = analysis.sti_per_layer(_engine(ws), k_frac=_k_frac(s), progress=p)
    return FigureData(per_layer, {"total": float(per_layer.sti.sum())})


_register(FigureKind(
    "sti_layers", "Singular Task Interference per layer", "TSV Eq. 6, Fig. 6 and 14",
    {"k_frac": None, "log_z": False}, _sti_layers,
    lambda d, s: sti_fig.sti_heatmap(analysis.sti_grid(d.table), log_z=bool(s["log_z"])), view=("log_z",),
))


def _sti_blocks(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    engine = _engine(ws)
    blocks = analysis.sti_block_matrices(engine, s["layer"], k_frac=_k_frac(s))
    meta = {"k": int(blocks.attrs["k"]), "layer": analysis.layer_label(blocks.attrs["key"]),
            "key": blocks.attrs["key"], "tasks": list(blocks.attrs["tasks"])}
    return FigureData(blocks, meta)


_register(FigureKind(
    "sti_blocks", "UᵀU and VᵀV of one layer", "TSV Fig. 3",
    {"layer": None, "k_frac": None, "task_a": None, "task_b": None}, _sti_blocks,
    lambda d, s: sti_fig.sti_blocks_figure(d.table, tasks=d.meta["tasks"], k=d.meta["k"],
                                           pair=(s["task_a"], s["task_b"]) if s["task_a"] and s["task_b"] else None),
    view=("task_a", "task_b"), columns="two",
))


def _sti_zoom(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    _engine(ws)
    blocks = compute_cached("sti_blocks", ws, {"layer": s["layer"], "k_frac": s["k_frac"]}, p)
    a, b = _pair(ws, s)
    matrix = _matrix_name(str(s["matrix"]))
    table = analysis.block_pair(blocks.table, matrix, a, b)
    return FigureData(table, {**{k: v for k, v in blocks.meta.items() if k != "tasks"}, "pair": [a, b],
                              "matrix": matrix})


_register(FigureKind(
    "sti_zoom", "Zoom on one task pair", "TSV Fig. 3 (zoom)",
    {"layer": None, "k_frac": None, "matrix": "V", "task_a": None, "task_b": None}, _sti_zoom,
    lambda d, s: sti_fig.sti_zoom_figure(d.table, matrix=d.meta.get("matrix", "VᵀV")),
))


def _sti_before_after(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    table = analysis.sti_before_after(_engine(ws), k_frac=_k_frac(s), progress=p)
    return FigureData(table, {"before": float(table.before.sum()), "after": float(table.after.sum())})


_register(FigureKind(
    "sti_before_after", "STI before and after TSV-M", "TSV Fig. 8", {"k_frac": None}, _sti_before_after,
    lambda d, s: sti_fig.sti_before_after_figure(d.table), columns="two",
))


# -- alignment ---------------------------------------------------------------------------------------------------------
def _sar_matrix(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    return FigureData(analysis.sar_avg_matrix(_engine(ws), eps=float(s["eps"]), k_rule=str(s["k_rule"]), progress=p))


_register(FigureKind(
    "sar_matrix", "Pairwise SAR_avg", "Iso Eq. 5-6, Fig. 3b", {"eps": 0.05, "k_rule": "paper"}, _sar_matrix,
    lambda d, s: align_fig.sar_matrix_figure(d.table),
))


def _accuracy_table(ws: FigureSource, methods: Sequence[str], s: Mapping[str, Any], p: Progress) -> pd.DataFrame:
    """Per-task accuracies; with ``s["subsample"]`` > 0 an estimate from that many images per task, with columns
    ``n`` (images), ``lo`` / ``hi`` (95 % Wilson interval, %) and ``subsample`` (0: whole split)."""
    subsample = int(s.get("subsample") or 0)
    steps = len(methods) + 2
    scope = f" (estimate from {subsample} images per task)" if subsample else ""
    results = {}

    def within(step: int) -> Progress:  # a model's own progress (merge, evaluation batches) inside its step
        return lambda i, n, text: p(step + (min(i, n) / n if n else 0.0), steps, text)

    p(0, steps, "zero-shot accuracy" + scope)
    results["Zero-shot"] = zs = ws.accuracy_result("zeroshot", progress=within(0), subsample=subsample)
    p(1, steps, "fine-tuned accuracy" + scope)
    results["Fine-tuned"] = ft = ws.accuracy_result("finetuned", progress=within(1), subsample=subsample)
    merged = {}
    for i, m in enumerate(methods):
        p(2 + i, steps, f"merging and evaluating {_display(m)}" + scope)
        results[_display(m)] = r = ws.accuracy_result(m, _params(s, m), within(2 + i), subsample=subsample)
        merged[_display(m)] = _percent(r.accuracies)
    merged.update(_adapted_accuracies(ws, s.get("adapted") or []))
    p(steps, steps, "accuracy: done")
    pool = getattr(ws, "pool", None)
    metrics = {t: pool.metric(t) for t in ws.task_names} if hasattr(pool, "metric") else None
    table = analysis.accuracy_table(merged, _percent(zs.accuracies), _percent(ft.accuracies), metrics)
    return analysis.with_intervals(table, results)


def _percent(accuracies: Mapping[str, float]) -> dict[str, float]:
    return {t: 100.0 * a for t, a in accuracies.items()}


def _adapted_accuracies(ws: FigureSource, refs: Sequence[str]) -> dict[str, dict[str, float]]:
    """Accuracies (%) of stored test-time adaptation results (AdaRank, AdaMerging) by their display names; read
    from the results store, never recomputed here (a run is trained and evaluated on the adaptation page)."""
    if not refs:
        return {}
    from spectral.adapt.session import stored_adaptations
    from spectral.adapt.store import adapted_accuracies, adapted_runs

    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise ParameterError("settings 'adapted' must list stored adaptation results as '<run_id>@<selected step>'")
    results = stored_adaptations(ws)
    runs = adapted_runs(results)
    names = dict(zip(runs["ref"], runs["name"]))
    return {names.get(str(ref), str(ref)): {t: 100.0 * a for t, a in adapted_accuracies(results, str(ref)).items()}
            for ref in refs}


def _sar_nai(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    engine = _engine(ws)
    methods = _check_methods(s["methods"], per_layer=True)
    accuracies = _accuracy_table(ws, methods, s, lambda i, n, t: p(i, 2 * n, t))
    sar = {}
    for i, m in enumerate(methods):
        p(len(methods) + 2 + i, 2 * (len(methods) + 2), f"SAR_avg against {_display(m)}")
        sar[_display(m)] = analysis.sar_to_merge(engine, m, _params(s, m), eps=float(s["eps"]), k_rule=str(s["k_rule"]))
    points, corr = analysis.alignment_points(sar, accuracies)
    return FigureData(points, {"pearson_r": {k: (None if math.isnan(v) else v) for k, v in corr.items()}})


_register(FigureKind(
    "sar_nai", "SAR_avg against NAI", "Iso Fig. 3a",
    {"eps": 0.05, "k_rule": "paper", "methods": list(analysis.ALIGNMENT_METHODS), "params": {}}, _sar_nai,
    lambda d, s: align_fig.sar_nai_figure(d.table, {k: (math.nan if v is None else v)
                                                    for k, v in d.meta.get("pearson_r", {}).items()}),
    evaluates=True,
))


# -- merge lab ---------------------------------------------------------------------------------------------------------
def _radar(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    _engine(ws)
    methods = _check_methods(s["methods"])
    table = _accuracy_table(ws, methods, s, p)
    summary = analysis.accuracy_summary(table)
    return FigureData(table, {"summary": summary.to_dict(orient="records")})


_register(FigureKind(
    "radar", "Per-dataset accuracy of merged models", "TSV Fig. 4",
    {"methods": ["task_arithmetic", "tsv_m", "iso_cts"], "params": {}, "value": "accuracy", "adapted": [],
     "subsample": 0}, _radar,
    lambda d, s: acc_fig.radar_figure(d.table, value=str(s["value"])), view=("value",), evaluates=True,
))


# -- sweeps ------------------------------------------------------------------------------------------------------------
def _rank_sweep(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.figures import sweep_runner

    table, refs = sweep_runner.rank_sweep(ws, [float(f) for f in s["fractions"]], p)
    return FigureData(table, {"references": refs})


def _alpha_sweep(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.figures import sweep_runner

    methods = _check_methods(s["methods"])
    table, refs = sweep_runner.alpha_sweep(ws, methods, [float(a) for a in s["alphas"]],
                                           {m: _params(s, m) for m in methods}, p)
    return FigureData(table, {"references": refs})


def _common_frac_sweep(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.figures import sweep_runner

    table, refs = sweep_runner.common_frac_sweep(ws, [float(f) for f in s["fractions"]], float(s["alpha"]), p)
    return FigureData(table, {"references": refs})


def _ablation(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.figures import sweep_runner

    grid = sweep_runner.ALPHA_GRID if s["select_alpha"] else None
    return FigureData(sweep_runner.ablation(ws, grid, p))


_register(FigureKind(
    "rank_sweep", "TSV-C: accuracy against retained rank fraction", "TSV Fig. 2",
    {"fractions": [0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0], "log_x": True}, _rank_sweep,
    lambda d, s: sweep_fig.sweep_figure(d.table, x_title="fraction of singular components kept per task",
                                        references=d.meta.get("references"), log_x=bool(s["log_x"])),
    view=("log_x",), evaluates=True,
))
_register(FigureKind(
    "alpha_sweep", "Sensitivity to α", "Iso Fig. 8",
    {"methods": ["task_arithmetic", "iso_c", "iso_cts"], "alphas": [0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5],
     "params": {}}, _alpha_sweep,
    lambda d, s: sweep_fig.sweep_figure(d.table, x_title="α", references=d.meta.get("references"), mark_best=True),
    evaluates=True,
))
_register(FigureKind(
    "common_frac_sweep", "Iso-CTS: size of the common subspace", "Iso Fig. 6",
    {"fractions": [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "alpha": 1.5}, _common_frac_sweep,
    lambda d, s: sweep_fig.sweep_figure(d.table, x_title="common subspace fraction k / r",
                                        references=d.meta.get("references"), mark_best=True),
    evaluates=True,
))
_register(FigureKind(
    "ablation", "Low-rank approximation × interference reduction", "TSV Table 4", {"select_alpha": True}, _ablation,
    lambda d, s: sweep_fig.ablation_figure(d.table), evaluates=True,
))


# -- over-accumulation (SVC, Li et al. 2026) ---------------------------------------------------------------------------
SVC_DEFAULTS = {"layer": None, "params": {"base": "task_arithmetic", "alpha": 1.0, "svc_alpha": 1.0}}


def _svc_layer(ws: FigureSource, s: dict[str, Any]):
    from spectral.metrics import overaccumulation

    engine = _engine(ws)
    key = analysis.resolve_layer(engine.taskset, s["layer"])
    params = s.get("params") or {}
    if not isinstance(params, Mapping):
        raise ParameterError("settings 'params' must map SVC parameter names to values")
    return key, overaccumulation.svc_calibration(engine.layer(key), params), dict(params)


def _svc_coefficients(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.metrics import overaccumulation

    key, calibrated, params = _svc_layer(ws, s)
    table = overaccumulation.coefficient_table(calibrated, list(ws.task_names), components=int(s["components"]))
    svc_alpha = float(get_method("svc").resolve_params(params, len(ws.task_names))["svc_alpha"])
    return FigureData(table, {"layer": analysis.layer_label(key), "key": key, "svc_alpha": svc_alpha})


def _svc_spectrum(ws: FigureSource, s: dict[str, Any], p: Progress) -> FigureData:
    from spectral.metrics import overaccumulation

    key, calibrated, params = _svc_layer(ws, s)
    base = str(get_method("svc").resolve_params(params, len(ws.task_names))["base"])
    return FigureData(overaccumulation.spectrum_table(calibrated),
                      {"layer": analysis.layer_label(key), "key": key, "base": base})


def _oa_fig():
    from spectral.figures import overaccumulation as oa_fig

    return oa_fig


_register(FigureKind(
    "svc_coefficients", "Over-accumulation: s_r^t per task and direction", "SVC Eq. 8 (Li et al. 2026)",
    {**SVC_DEFAULTS, "components": 24}, _svc_coefficients,
    lambda d, s: _oa_fig().coefficient_heatmap(d.table, svc_alpha=float(d.meta.get("svc_alpha", 1.0))),
))
_register(FigureKind(
    "svc_spectrum", "Spectrum before and after SVC", "SVC Alg. 1 (Li et al. 2026)",
    {**SVC_DEFAULTS, "log_y": True}, _svc_spectrum,
    lambda d, s: _oa_fig().calibrated_spectrum_figure(d.table, log_y=bool(s["log_y"]),
                                                      label=_display(str(d.meta.get("base", "task_arithmetic")))),
    view=("log_y",),
))


def regenerate(document: Mapping[str, Any], *, workspace: FigureSource | None = None,
               open_source: SourceOpener | None = None,
               progress: Progress | None = None) -> tuple[go.Figure, FigureData, dict[str, Any]]:
    """(figure, data, resolved settings) of a settings document, on ``workspace`` or, if none is given, on the
    source ``open_source(pool, device)`` opens for the document's pool (the CLI passes the app's workspaces)."""
    name = str(document.get("figure", ""))
    get_kind(name)
    settings = resolve_settings(name, document.get("settings") or {})
    ws = workspace
    if ws is None:
        pool = document.get("pool")
        if not pool:
            raise ParameterError("figure settings need a 'pool' (zoo-8, a pool YAML or a checkpoint folder)")
        if open_source is None:
            raise ParameterError("regenerate needs an open pool (workspace=) or a way to open one (open_source=)")
        ws = open_source(str(pool), str(document.get("device", "auto")))
    ws.open(progress)
    data = compute(name, ws, settings, progress)
    return build(name, data, settings), data, settings
