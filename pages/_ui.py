"""Streamlit glue shared by app.py and the pages: the sidebar, the workspace of the chosen pool, progress of
background jobs, figures with their download row, and widgets built from method parameter declarations.

Everything computational lives in :mod:`spectral` (analysis, figures.registry, app_state); this module only reads
widgets, waits on jobs with a progress bar, and shows results. No ``st.*`` call happens inside a cached function
or a background job.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import streamlit as st
import torch

from spectral import analysis
from spectral.app_state import (
    ZOO_POOLS,
    Job,
    PoolError,
    Workspace,
    is_zoo_spec,
    get_workspace,
    registered_pools,
    zoo_status,
)
from spectral.errors import SpectralError
from spectral.figures import registry
from spectral.figures.template import fit_screen_legend
from spectral.figures.export import (
    DATA_FORMATS,
    IMAGE_FORMATS,
    csv_bytes,
    export_figure,
    find_chromium,
    settings_yaml,
)
from spectral.methods import get_method
from spectral.methods.base import Param

OTHER_POOL = "Other: pool YAML or checkpoint folder…"
#: how long a page waits for a job before it draws a progress bar (fast results then appear without flicker)
QUICK_WAIT_S = 0.15
POLL_S = 0.2


# -- errors ------------------------------------------------------------------------------------------------------------
@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show an error on the page instead of crashing it (Streamlit's own control-flow exceptions pass through:
    they are not ``Exception`` subclasses)."""
    try:
        yield
    except SpectralError as err:
        st.error(f"{what + ': ' if what else ''}{err}", icon="⚠️")
    except (ValueError, KeyError, FileNotFoundError, OSError) as err:
        st.error(f"{what + ': ' if what else ''}{type(err).__name__}: {err}", icon="⚠️")
    except Exception as err:  # noqa: BLE001 - a bug: show it with its traceback, keep the rest of the page
        st.error(f"{what + ': ' if what else ''}unexpected {type(err).__name__}: {err}", icon="🐞")
        st.exception(err)


# -- jobs ----------------------------------------------------------------------------------------------------------
def wait_for(job: Job[Any], label: str) -> Any:
    """The job's result; while it runs, a status box with a progress bar fed from the job (polled here, in the
    script thread). If the user leaves the page meanwhile, the job keeps running and its result is memoised."""
    if not job.wait(QUICK_WAIT_S):
        holder = st.empty()
        with holder.container():
            with st.status(label, expanded=True, state="running"):
                bar = st.progress(job.fraction, text=job.text)
                while not job.wait(POLL_S):
                    bar.progress(job.fraction, text=job.text[:120])
        holder.empty()
    return job.result()


# -- pool and workspace ----------------------------------------------------------------------------------------------
def default_pool() -> str:
    return os.environ.get("SPECTRAL_DEFAULT_POOL", ZOO_POOLS[0])


def pool_options() -> list[str]:
    options = list(ZOO_POOLS)
    options += [p for p in registered_pools() if p not in options]
    default = default_pool()
    if default not in options:
        options.insert(0, default)
    return options + [OTHER_POOL]


def device_options() -> list[str]:
    options = ["auto", "cpu"]
    if torch.cuda.is_available():
        options += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return options


@st.cache_resource(show_spinner=False)
def _workspace(spec: str, device: str) -> Workspace:
    """One workspace per (pool spec, device), shared by every session (keyed by strings only)."""
    return get_workspace(spec, device=device)


def sidebar() -> tuple[str, str]:
    """Pool, device and export-width choices (bound to the URL / kept for the session): ``(pool spec, device)``.

    Drawn by :func:`workspace`, i.e. from inside each page's run: AppTest keeps only the first run's sidebar when
    the main script draws it around ``st.navigation``, and a page-drawn sidebar behaves the same in a browser.
    """
    with st.sidebar:
        st.subheader("Model pool")
        options = pool_options()
        choice = st.selectbox("Pool", options, index=options.index(default_pool()), key="pool",
                              bind="query-params", persist_state="session",
                              help="The demo zoo (built locally on first use) or your own checkpoints.")
        spec = choice
        if choice == OTHER_POOL:
            spec = st.text_input("Pool YAML or checkpoint folder", key="pool_path", bind="query-params",
                                 persist_state="session", placeholder="/path/to/pool.yaml").strip()
        device = st.selectbox("Device", device_options(), key="device", persist_state="session",
                              help="auto picks CUDA when present")
        st.radio("Export width", ["auto", "one column", "two columns"], key="export_columns", horizontal=True,
                 persist_state="session", help="Paper template width of the PDF / SVG / PNG downloads")
    return spec, device


def leave_legacy_navigation() -> None:
    """Rerun through app.py when Streamlit ran this page file on its own.

    Streamlit treats an app with a pages/ folder as a legacy multipage app until the first ``st.navigation`` call
    of the server's life: so the first request of a fresh server on a deep link (``/spectra``) runs
    pages/spectra.py directly, without app.py's page config and navigation. That flag is Streamlit's own
    (``PagesManager.uses_pages_directory``); clearing it and rerunning sends the request through app.py, whose
    url paths are the file names, so the same page opens. A server sets the flag once, so this reruns once per
    process (AppTest resets the flag before every run; rerunning each time would swallow its button clicks).
    """
    global _LEFT_LEGACY
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without that module has no legacy mode to leave
        return
    if PagesManager.uses_pages_directory and not _LEFT_LEGACY:
        _LEFT_LEGACY = True
        PagesManager.uses_pages_directory = False
        st.rerun()


_LEFT_LEGACY = False


def workspace() -> Workspace:
    """Draw the sidebar and return the open workspace of the chosen pool, or show why not and ``st.stop()``.

    A missing demo zoo is built first (a background job with a progress bar, per issue 3: the app builds it on
    first start); the SVD cache is filled lazily by the engine and can be built from the sidebar.
    """
    leave_legacy_navigation()
    spec, device = sidebar()
    if not spec:
        st.info("Enter the path of a pool YAML or checkpoint folder in the sidebar.")
        st.stop()
    ws = _workspace(spec, device)
    if not ws.is_open:
        building = is_zoo_spec(spec) and zoo_status(spec) == "missing"
        if building:
            st.info(f"The demo zoo **{spec}** is not built yet: building it now (a few minutes on CPU, once; "
                    "generated and trained locally, nothing is downloaded). You can switch pages meanwhile.")
        try:
            wait_for(ws.open_job(), f"Building the demo zoo {spec}…" if building else f"Opening {spec}…")
        except Exception as err:  # noqa: BLE001 - any failure to open a pool is shown, the app keeps running
            st.error(f"Cannot open the pool **{spec}**: {err}", icon="⚠️")
            if not isinstance(err, (PoolError, SpectralError, OSError)):
                st.exception(err)
            st.stop()
        if building:
            st.rerun()
    cache_status(ws)
    return ws


def cache_status(ws: Workspace) -> None:
    """Pool summary and SVD-cache progress in the sidebar, with a button that builds the missing factors."""
    assert ws.taskset is not None and ws.engine is not None
    running = ws.jobs.get(("svd-cache",))
    building = running is not None and not running.done
    with st.sidebar:
        status = ws.cache_status()
        st.caption(f"**{ws.spec}** · {ws.taskset.num_tasks} tasks · {len(ws.taskset.matrix_keys)} matrix layers · "
                   f"device {ws.engine.device}")
        st.progress(status["cached"] / max(1, status["total"]),
                    text=f"SVD cache: {status['cached']}/{status['total']} task matrices")
        clicked = False
        if status["cached"] < status["total"] and not building:
            clicked = st.button("Build SVD cache", key="build_cache",
                                help="Decompose every task matrix once (resumable; merges reuse the factors)")
    if clicked or building:
        with guard("SVD cache"):
            wait_for(ws.cache_job(), "Building the SVD cache…")
            st.rerun()


# -- export width ------------------------------------------------------------------------------------------------------
def export_columns(kind: str) -> str:
    choice = st.session_state.get("export_columns", "auto")
    if choice == "one column":
        return "one"
    if choice == "two columns":
        return "two"
    return registry.get_kind(kind).columns


# -- figures -----------------------------------------------------------------------------------------------------------
def figure_data(ws: Workspace, kind: str, settings: Mapping[str, Any]) -> registry.FigureData:
    """Memoised figure data; computed in a background job with a progress bar when not yet known."""
    resolved = registry.resolve_settings(kind, settings)
    title = registry.get_kind(kind).title
    job = ws.compute(registry.data_key(kind, resolved),
                     lambda progress: registry.get_kind(kind).compute(ws, resolved, progress), label=title)
    return wait_for(job, f"Computing: {title}…")


def show_figure(ws: Workspace, kind: str, settings: Mapping[str, Any], *, key: str,
                caption: str | None = None) -> registry.FigureData | None:
    """Compute (or recall) a figure's data, draw it, and offer PDF / SVG / PNG / CSV / YAML downloads."""
    with guard(registry.get_kind(kind).title):
        data = figure_data(ws, kind, settings)
        fig = registry.build(kind, data, settings)
        fig.update_layout(margin=dict(t=30, b=40))  # on screen only; the paper template sets its own
        fit_screen_legend(fig)  # many tasks + merges: legend above the plot, nothing cut off
        st.plotly_chart(fig, key=f"chart_{key}", theme="streamlit")
        if caption:
            st.caption(caption)
        download_row(ws, kind, settings, data, fig, key=key)
        return data
    return None


def download_row(ws: Workspace, kind: str, settings: Mapping[str, Any], data: registry.FigureData, fig: Any,
                 *, key: str) -> None:
    """Five download buttons; the files are built only when clicked (``data=callable``, ``on_click="ignore"``)."""
    columns = export_columns(kind)
    stem = registry.download_stem(kind, ws.spec, settings, data.meta)
    document = registry.settings_document(kind, ws.spec, settings, columns=columns, meta=data.meta)
    chromium = find_chromium() is not None
    cols = st.columns(5, gap="small", width=420)
    for col, fmt in zip(cols, IMAGE_FORMATS):
        col.download_button(
            fmt.upper(), data=(lambda fmt=fmt: export_figure(fig, fmt, columns=columns)),  # type: ignore[arg-type]
            file_name=f"{stem}.{fmt}", mime=IMAGE_FORMATS[fmt], key=f"dl_{key}_{fmt}", on_click="ignore",
            disabled=not chromium,
            help=f"{columns}-column paper template" if chromium else "needs Debian's chromium (apt install chromium)",
        )
    cols[3].download_button("CSV", data=lambda: csv_bytes(data.table), file_name=f"{stem}.csv",
                            mime=DATA_FORMATS["csv"], key=f"dl_{key}_csv", on_click="ignore",
                            help="the figure's data")
    cols[4].download_button("YAML", data=lambda: settings_yaml(document), file_name=f"{stem}.yaml",
                            mime=DATA_FORMATS["yaml"], key=f"dl_{key}_yaml", on_click="ignore",
                            help=f"settings: `python -m spectral figure {stem}.yaml -o {stem}.pdf` regenerates it")


def table_download(label: str, table: Any, file_name: str, key: str) -> None:
    st.download_button(label, data=lambda: csv_bytes(table), file_name=file_name, mime="text/csv", key=key,
                       on_click="ignore", icon=":material/table:")


# -- widgets ---------------------------------------------------------------------------------------------------------
def layer_select(ws: Workspace, key: str, label: str = "Layer") -> str:
    """Selectbox over the pool's matrix layers (short labels), default the first attention in_proj (TSV Fig. 3)."""
    assert ws.taskset is not None
    labels = list(analysis.layers(ws.taskset).label)
    default = analysis.layer_label(analysis.resolve_layer(ws.taskset, None))
    return st.selectbox(label, labels, index=labels.index(default), key=key, bind="query-params",
                        persist_state="session")


def param_widget(method: str, p: Param, num_tasks: int, prefix: str) -> Any:
    """One widget from a method's declared parameter (kind, range, step, default, help), bound to the URL."""
    key = f"{prefix}_{method}_{p.name}"
    label = p.label or p.name
    default = p.default_value(num_tasks)
    common = dict(key=key, help=p.help or None, bind="query-params", persist_state="session")
    if p.kind == "float":
        low = float(p.low) if p.low is not None else 0.0
        high = float(p.high) if p.high is not None else max(1.0, 2 * float(default))
        step = float(p.step) if p.step is not None else (high - low) / 100
        value = min(high, max(low, round(float(default) / step) * step))
        decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 3
        return st.slider(label, low, high, float(round(value, 6)), step, format=f"%.{decimals}f", **common)
    if p.kind == "int":
        low = int(p.low) if p.low is not None else 0
        high = int(p.high) if p.high is not None else max(10, 2 * int(default))
        if p.name == "min_tasks":
            high = min(high, num_tasks)
        return st.slider(label, low, high, min(high, max(low, int(default))), int(p.step or 1), **common)
    if p.kind == "choice":
        choices = list(p.choices)
        return st.selectbox(label, choices, index=choices.index(str(default)), **common)
    if p.kind == "bool":
        return st.checkbox(label, value=bool(default), **common)
    raise SpectralError(f"{method}: parameter {p.name!r} has unknown kind {p.kind!r}")


def method_params(methods: Sequence[str], num_tasks: int, prefix: str, *,
                  per_row: int = 3) -> dict[str, dict[str, Any]]:
    """Sliders for every chosen method, laid out one method per column: ``{method: {param: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(methods), per_row):
        cols = st.columns(per_row)
        for col, method in zip(cols, methods[start:start + per_row]):
            m = get_method(method)
            with col:
                st.markdown(f"**{m.display_name}**", help=f"{m.paper}. {m.description}")
                out[method] = {p.name: param_widget(method, p, num_tasks, prefix) for p in m.params}
                if not m.params:
                    st.caption("no parameters")
    return out


def merge_methods(*, per_layer: bool = False) -> list[str]:
    from spectral.methods import REGISTRY

    return [n for n, m in REGISTRY.items() if m.kind == "merge" and (m.layer_fn is not None or not per_layer)]


def display_name(method: str) -> str:
    return get_method(method).display_name
