"""Streamlit glue shared by app.py and the pages: the sidebar, the workspace of the chosen pool, progress of
background jobs, figures with their download row, and widgets built from method parameter declarations.

Everything computational lives in :mod:`spectral` (analysis, figures.registry, app_state); this module only reads
widgets, waits on jobs with a progress bar, and shows results. No ``st.*`` call happens inside a cached function
or a background job.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

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
    needs_trust,
    registered_pools,
    zoo_status,
)
from spectral.cache import default_cache_dir
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
from spectral import serving
from spectral.roots import POOL_ROOTS_ENV, pool_roots

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
    script thread). If the user leaves the page meanwhile, the job keeps running and its result is memoised; if
    the user closes the tab and no other session waits for it, it is cancelled (:mod:`spectral.serving`). A queued
    job's bar says how many jobs are ahead of it."""
    job.attach(session_id())
    t0 = time.perf_counter()
    if not job.wait(QUICK_WAIT_S):
        holder = st.empty()
        with holder.container():
            with st.status(label, expanded=True, state="running"):
                bar = st.progress(job.fraction, text=job.text)
                while not job.wait(POLL_S):
                    bar.progress(job.fraction, text=job.text[:120])
        holder.empty()
    serving.trace("waited", job=label, session=session_id(), s=round(time.perf_counter() - t0, 3))
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
def _workspace(spec: str, device: str, trust_pickle: bool = False, roots: tuple[str, ...] = ()) -> Workspace:
    """One workspace per (pool spec, device, trust, pool roots), shared by every session (keyed by plain values
    only). The dashboard's workspaces are bounded by the pool roots (:func:`dashboard_roots`)."""
    from pathlib import Path

    return get_workspace(spec, device=device, trust_pickle=trust_pickle, roots=tuple(Path(r) for r in roots))


# -- serving (issue 26): sessions, listening address, pool roots, the job queue -------------------------------------
def session_id() -> str | None:
    """This browser session's id (None outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _session_connected(sid: str) -> bool:
    from streamlit.runtime import Runtime

    if not Runtime.exists():  # AppTest and bare scripts: no runtime to ask, nothing is cancelled
        return True
    return Runtime.instance().is_active_session(sid)


serving.set_session_probe(_session_connected)


def listen_address() -> str:
    """The address the server listens on (``server.address``; empty: every interface)."""
    return str(st.get_option("server.address") or "")


def served_beyond_loopback() -> bool:
    return not serving.is_loopback(listen_address())


def dashboard_roots() -> tuple[str, ...]:
    """The pool roots every path typed into the dashboard (or put in its link) must lie in."""
    return tuple(str(r) for r in pool_roots(cache_dir=default_cache_dir()))


def serving_sidebar() -> None:
    """A notice when the server listens beyond loopback, and the server's job queue (jobs ahead of yours)."""
    with st.sidebar:
        if served_beyond_loopback():
            where = listen_address() or "every network interface"
            st.warning(f"Served beyond this machine (listening on {where}): anyone who reaches the port can use "
                       f"this dashboard. Paths are bounded by `{POOL_ROOTS_ENV}`; see the guide, *Serving to "
                       "your group* (docs/serving.md).", icon="🌐")
        queue = serving.job_queue()
        running, waiting = queue.snapshot()
        if running or waiting:
            sid = session_id()
            mine = [i for i, job in enumerate(waiting) if sid in getattr(job, "waiters").sessions()]
            line = (f"Jobs: {len(running)} running, {len(waiting)} queued (at most {queue.slots} at once)")
            if mine:
                ahead = len(running) + mine[0]
                line += f" · {ahead} ahead of yours"
            elif any(sid in getattr(job, "waiters").sessions() for job in running):
                line += " · yours is running"
            st.caption(line, help="Cache builds, evaluations and sweeps of every session share one queue "
                                  f"(`{serving.MAX_JOBS_ENV}`). The same job asked for twice runs once.")


TRUST_LABEL = "Trust pickled checkpoints"
TRUST_WARNING = "Unpickling runs code from the file: tick only for sources you trust."


def sidebar() -> tuple[str, str, bool]:
    """Pool, device, trust and export-width choices: ``(pool spec, device, trust pickles)``.

    Pool and device are bound to the URL / kept for the session. The trust control is kept for the session only
    and is never read from the URL: a shared link must not be able to switch on code execution.

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
        trust = trust_control()
        device = st.selectbox("Device", device_options(), key="device", persist_state="session",
                              help="auto picks CUDA when present")
        st.radio("Export width", ["auto", "one column", "two columns"], key="export_columns", horizontal=True,
                 persist_state="session", help="Paper template width of the PDF / SVG / PNG downloads")
        st.caption(_cache_size_line(os.fspath(default_cache_dir())),
                   help="`python -m spectral cache status` for details, `cache clean` to free space")
    cluster_sidebar()
    serving_sidebar()
    return spec, device, bool(trust)


PICKLE_SERVED = (f"Off while the dashboard is served beyond this machine: start the server with "
                 f"`{serving.ALLOW_PICKLE_ENV}=1` to allow it.")


def trust_control() -> bool:
    """The "Trust pickled checkpoints" checkbox (never read from the URL). Served beyond loopback it is off and
    disabled unless the server was started with ``SPECTRAL_ALLOW_PICKLE=1``."""
    enabled = serving.pickle_control_enabled(listen_address())
    if not enabled:
        st.session_state["trust_pickle"] = False  # a value kept from earlier in the session does not count
    trust = st.checkbox(TRUST_LABEL, value=False, key="trust_pickle", persist_state="session", disabled=not enabled,
                        help="The papers' task_vectors / tall_masks checkpoints are pickled Python objects. "
                             "spectral unpickles them through a restricted unpickler (only tensors, torch.nn "
                             "and open_clip classes), but a pickle is still code: trust only files you know.")
    st.caption(f"⚠️ {TRUST_WARNING}" if enabled else f"🔒 {PICKLE_SERVED}")
    return bool(trust) and enabled


@st.cache_data(ttl=30, show_spinner=False)
def _cache_size_line(cache_dir: str) -> str:
    """The cache's size (walks the folder: at most every 30 s, not on every slider move)."""
    from spectral.housekeeping import cache_summary

    return cache_summary(cache_dir)


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
    first start); the SVD cache is filled lazily by the engine and can be built from the sidebar. A failed open is
    remembered for the session (shown again on every page, not retried) until the user asks to retry; a pickled
    pool refused for lack of trust opens as soon as the trust control is ticked (another workspace key).
    """
    leave_legacy_navigation()
    snapshot_url()
    spec, device, trust = sidebar()
    url_warnings()
    if not spec:
        st.info("Enter the path of a pool YAML or checkpoint folder in the sidebar.")
        st.stop()
    if is_zoo_spec(spec) or spec in registered_pools():
        trust = False  # built here, never unpickled: one workspace whatever the control says
    failures: dict[tuple[str, str, bool], tuple[str, bool, bool]] = st.session_state.setdefault(_FAILED_OPENS, {})
    key = (spec, device, trust)
    ws = _workspace(spec, device, trust, dashboard_roots())
    if key not in failures and not ws.is_open:
        building = is_zoo_spec(spec) and zoo_status(spec) == "missing"
        if building:
            st.info(f"The demo zoo **{spec}** is not built yet: building it now (a few minutes on CPU, once; "
                    "generated and trained locally, nothing is downloaded). You can switch pages meanwhile.")
        try:
            wait_for(ws.open_job(), f"Building the demo zoo {spec}…" if building else f"Opening {spec}…")
        except Exception as err:  # noqa: BLE001 - any failure to open a pool is shown, the app keeps running
            known = isinstance(err, (PoolError, SpectralError, OSError))
            failures[key] = (str(err), needs_trust(err), known)
            if not known:
                st.exception(err)  # a bug: its traceback, once
        else:
            if building:
                st.rerun()
    if key in failures:
        show_open_failure(spec, *failures[key])
        if st.button("Retry opening the pool", key="retry_pool", icon=":material/refresh:",
                     help="Open it again (after fixing the files); until then every page shows this error"):
            failures.pop(key, None)
            st.rerun()
        st.stop()
    cache_status(ws)
    return ws


#: session-state key of the failed opens: {(spec, device, trust): (message, refused for lack of trust, known error)}
_FAILED_OPENS = "_failed_pool_opens"


def show_open_failure(spec: str, message: str, refused_pickle: bool, known: bool = True) -> None:
    """Why a pool did not open; for a refused pickle, where the trust control is and what ticking it means."""
    st.error(f"Cannot open the pool **{spec}**: {message}", icon="⚠️" if known else "🐞")
    if refused_pickle:
        st.info(f"This pool holds pickled checkpoints. To open it, tick **{TRUST_LABEL}** in the sidebar. "
                f"{TRUST_WARNING}", icon="🔒")


# -- URL values --------------------------------------------------------------------------------------------------------
_URL_SNAPSHOT = "_url_snapshot"
_URL_WARNED = "_url_warned"


def snapshot_url() -> None:
    """Remember this run's URL parameters before any widget reads them: Streamlit drops a bound widget's
    parameter from ``st.query_params`` when it rejects the value (and when the value is the default)."""
    st.session_state[_URL_SNAPSHOT] = {k: st.query_params.get_all(k) for k in st.query_params}
    st.session_state[_URL_WARNED] = set()


def url_value_matches(raw: Sequence[str], value: Any) -> bool:
    """Whether the URL's text stands for the widget's value (then a dropped parameter was just the default)."""
    if isinstance(value, (list, tuple)):
        return len(raw) == len(value) and all(url_value_matches([r], v) for r, v in zip(raw, value))
    if not raw:
        return False
    text = raw[-1].strip()
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(text), float(value), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return text.lower() == str(value).lower()


def url_warnings() -> None:
    """Warn about URL parameters this run rejected (``k_frac=7.5``, ``alpha=banana``), naming the parameter, the
    value and the value used instead. Called after widgets are drawn; each parameter warns once per run."""
    snapshot: dict[str, list[str]] = st.session_state.get(_URL_SNAPSHOT) or {}
    warned: set[str] = st.session_state.setdefault(_URL_WARNED, set())
    for name, raw in snapshot.items():
        if name in warned or name in st.query_params or name not in st.session_state:
            continue  # kept (accepted), or no widget of that name has been drawn yet in this run
        value = st.session_state[name]
        if url_value_matches(raw, value):
            continue
        warned.add(name)
        shown = ", ".join(raw)
        st.warning(f"URL parameter `{name}={shown}` is not a valid value for this control: using "
                   f"`{value!r}` instead.", icon="⚠️")


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
            wait_for(ws.cache_job(session_id()), "Building the SVD cache…")
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
def figure_data(ws: Workspace, kind: str, settings: Mapping[str, Any], *, slot: str | None = None
                ) -> registry.FigureData:
    """Memoised figure data; computed in a background job with a progress bar when not yet known. ``slot``: the
    figure on the page this data is for (see :func:`claim`)."""
    resolved = registry.resolve_settings(kind, settings)
    title = registry.get_kind(kind).title
    job = ws.compute(registry.data_key(kind, resolved),
                     lambda progress: registry.get_kind(kind).compute(ws, resolved, progress), label=title,
                     heavy=registry.get_kind(kind).evaluates, session=session_id())
    claim(slot, job)
    return wait_for(job, f"Computing: {title}…")


#: session-state key: {figure slot on a page: the job computing what that slot shows}
_CLAIMS = "_figure_jobs"


def claim(slot: str | None, job: Job[Any]) -> None:
    """This session's figure ``slot`` now waits for ``job``: the job it waited for before (the slider has moved
    on since) loses this session as a waiter and, when no other session waits for it, leaves the server's queue
    unrun. So dragging a slider through ten values queues one evaluation, not ten."""
    if slot is None:
        return
    claims: dict[str, Job[Any]] = st.session_state.setdefault(_CLAIMS, {})
    previous = claims.get(slot)
    claims[slot] = job
    if previous is not None and previous is not job and not any(j is previous for j in claims.values()):
        previous.detach(session_id())


def server_busy(ws: Workspace, kind: str, settings: Mapping[str, Any]) -> bool:
    """Whether other sessions keep the server's queue busy (their jobs run or wait, or did seconds ago), so a new
    job for this figure would likely queue behind theirs. False when the figure's own job already runs or waits
    (started by another session): joining it is the quickest way to the result."""
    job = ws.jobs.get(registry.data_key(kind, registry.resolve_settings(kind, settings)))
    if job is not None and not job.done and not job.cancel_requested:
        return False
    return serving.job_queue().others_active(session_id())


def figure_ready(ws: Workspace, kind: str, settings: Mapping[str, Any]) -> bool:
    """Whether a figure's data is already memoised (shown at once, without a progress bar)."""
    return registry.data_key(kind, registry.resolve_settings(kind, settings)) in ws.memo


def figure_job(ws: Workspace, kind: str, settings: Mapping[str, Any], *, slot: str | None = None) -> Any:
    """Start (or find) the background job computing a figure's data, without waiting for it (it yields its queue
    slot to the estimates sessions wait for on screen). ``slot``: as for :func:`figure_data`."""
    resolved = registry.resolve_settings(kind, settings)
    job = ws.compute(registry.data_key(kind, resolved),
                     lambda progress: registry.get_kind(kind).compute(ws, resolved, progress),
                     label=registry.get_kind(kind).title, heavy=registry.get_kind(kind).evaluates,
                     session=session_id(), background=True)
    claim(slot, job)
    return job


def show_figure(ws: Workspace, kind: str, settings: Mapping[str, Any], *, key: str,
                caption: str | Callable[[registry.FigureData], str] | None = None) -> registry.FigureData | None:
    """Compute (or recall) a figure's data, draw it, and offer PDF / SVG / PNG / CSV / YAML downloads.

    ``caption`` may be a function of the figure's data, for captions that state a finding (computed from the data
    shown, :mod:`spectral.figures.captions`)."""
    url_warnings()
    with guard(registry.get_kind(kind).title):
        data = figure_data(ws, kind, settings, slot=key)
        fig = registry.build(kind, data, settings)
        fig.update_layout(margin=dict(t=30, b=40))  # on screen only; the paper template sets its own
        fit_screen_legend(fig)  # many tasks + merges: legend above the plot, nothing cut off
        st.plotly_chart(fig, key=f"chart_{key}", theme="streamlit")
        if callable(caption):
            caption = caption(data)
        if caption:
            st.caption(caption)
        download_row(ws, kind, settings, data, fig, key=key)
        return data
    return None


#: rendered paper exports kept per session (figure, width) → {format: bytes}
_EXPORTS = "_prepared_exports"
_EXPORTS_KEPT = 8


def download_row(ws: Workspace, kind: str, settings: Mapping[str, Any], data: registry.FigureData, fig: Any,
                 *, key: str) -> None:
    """Download buttons whose files exist before they are clicked, so no download is ever cancelled.

    Streamlit's lazy downloads (``data=callable``) store the built file unreferenced: the next script run of any
    session (a slider move elsewhere, a fragment's timer) may delete it before the browser fetches it, and the
    download fails silently (issue 29; errors inside the callable reach only the server log). Here CSV and YAML are
    built with the page (small), and the paper-template PDF / SVG / PNG are rendered by one click on **PDF · SVG ·
    PNG** (errors shown on the page), kept for the session, and offered as ordinary downloads of those bytes.
    """
    columns = export_columns(kind)
    stem = registry.download_stem(kind, ws.spec, settings, data.meta, num_tasks=len(ws.task_names))
    document = registry.settings_document(kind, ws.spec, settings, columns=columns, meta=data.meta)
    chromium = find_chromium() is not None
    prepared: dict[Any, dict[str, bytes]] = st.session_state.setdefault(_EXPORTS, {})
    figure_id = (key, stem, columns, hashlib.blake2s(fig.to_json().encode(), digest_size=8).hexdigest())
    files = prepared.get(figure_id)
    images, csv_col, yaml_col = st.columns([3, 1, 1], gap="small", width=420)
    if files is None:
        slot = images.empty()
        clicked = slot.button(
            "PDF · SVG · PNG", key=f"prep_{key}", icon=":material/picture_as_pdf:", disabled=not chromium,
            width="stretch",
            help=(f"Render the {columns}-column paper version (a few seconds), then download it"
                  if chromium else "needs Debian's chromium (apt install chromium)"))
        if clicked:
            with images, st.spinner("Rendering…"):
                try:
                    files = {fmt: export_figure(fig, fmt, columns=columns) for fmt in IMAGE_FORMATS}
                except SpectralError as err:
                    st.error(f"Export failed: {err}", icon="⚠️")
            if files is not None:
                slot.empty()  # the three downloads take the button's place
                prepared[figure_id] = files
                while len(prepared) > _EXPORTS_KEPT:  # oldest first: dicts keep insertion order
                    prepared.pop(next(iter(prepared)))
    if files is not None:
        for col, fmt in zip(images.columns(3, gap="small"), IMAGE_FORMATS):
            col.download_button(fmt.upper(), data=files[fmt], file_name=f"{stem}.{fmt}", mime=IMAGE_FORMATS[fmt],
                                key=f"dl_{key}_{fmt}", on_click="ignore", help=f"{columns}-column paper template")
    csv_col.download_button("CSV", data=csv_bytes(data.table), file_name=f"{stem}.csv", mime=DATA_FORMATS["csv"],
                            key=f"dl_{key}_csv", on_click="ignore", help="the figure's data")
    yaml_col.download_button("YAML", data=settings_yaml(document), file_name=f"{stem}.yaml",
                             mime=DATA_FORMATS["yaml"], key=f"dl_{key}_yaml", on_click="ignore",
                             help=f"settings: `python -m spectral figure {stem}.yaml -o {stem}.pdf` regenerates it")


def table_download(label: str, table: Any, file_name: str, key: str) -> None:
    """A CSV download of a table, built with the page (a lazy file could be deleted before the browser fetches
    it: see :func:`download_row`)."""
    st.download_button(label, data=csv_bytes(table), file_name=file_name, mime="text/csv", key=key,
                       on_click="ignore", icon=":material/table:")


# -- widgets ---------------------------------------------------------------------------------------------------------
def layer_select(ws: Workspace, key: str, label: str = "Layer") -> str:
    """Selectbox over the pool's matrix layers (short labels), default the first attention in_proj (TSV Fig. 3)."""
    assert ws.taskset is not None
    labels = list(analysis.layers(ws.taskset).label)
    default = analysis.layer_label(analysis.resolve_layer(ws.taskset, None))
    return st.selectbox(label, labels, index=labels.index(default), key=key, bind="query-params",
                        persist_state="session")


def pool_ranks(ws: Workspace) -> dict[int, int]:
    """``{r: number of matrix layers of rank r}`` of the open pool (what rank parameters act on)."""
    assert ws.taskset is not None
    return {int(r): int(n) for r, n in analysis.layers(ws.taskset).r.value_counts().items()}


def _url_number(key: str) -> float | None:
    raw = st.query_params.get(key)
    try:
        return round(float(raw), 6) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _session_number(key: str) -> float | None:
    value = st.session_state.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def param_widget(method: str, p: Param, num_tasks: int, prefix: str,
                 ranks: Mapping[int, int] | None = None) -> Any:
    """One widget from a method's declared parameter (kind, range, step, default, help), bound to the URL.

    A rank parameter (one that declares ``Param.effective``: TSV-M's and CART's k_frac, Iso-CTS's common_frac) on
    a pool whose ranks are known gets a slider over only the values that change the merge
    (:func:`spectral.methods.effective.distinct_values`), with the sizes the merge uses written beside it."""
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
        if p.effective is not None and ranks and p.low is not None and p.high is not None and p.step:
            return _rank_slider(p, label, round(value, decimals), num_tasks, ranks, common)
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


def _rank_slider(p: Param, label: str, default: float, num_tasks: int, ranks: Mapping[int, int],
                 common: dict[str, Any]) -> float:
    """A select slider over the values of ``p`` that change the merge on these ranks, and the sizes it gives."""
    from spectral.methods.effective import describe_sizes, distinct_values, effective_sizes

    key = common["key"]
    options = distinct_values(p, ranks, num_tasks, keep=[default, _url_number(key), _session_number(key)])
    start = min(options, key=lambda v: abs(v - default))
    value = float(st.select_slider(label, options, value=start, format_func=lambda v: f"{v:g}", **common))
    sizes = describe_sizes(effective_sizes(p, value, ranks, num_tasks), ranks)
    st.caption(f"{sizes} · {len(options)} distinct values on this pool",
               help="Steps that would not change any layer's integer sizes are left out of the slider.")
    return value


def method_params(methods: Sequence[str], num_tasks: int, prefix: str, *, per_row: int = 3,
                  ranks: Mapping[int, int] | None = None) -> dict[str, dict[str, Any]]:
    """Sliders for every chosen method, laid out one method per column: ``{method: {param: value}}``. With
    ``ranks`` (:func:`pool_ranks`), rank parameters step only through values that change the merge."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(methods), per_row):
        cols = st.columns(per_row)
        for col, method in zip(cols, methods[start:start + per_row]):
            m = get_method(method)
            with col:
                st.markdown(f"**{m.display_name}**", help=f"{m.paper}. {m.description}")
                out[method] = {p.name: param_widget(method, p, num_tasks, prefix, ranks) for p in m.params}
                if not m.params:
                    st.caption("no parameters")
    url_warnings()
    return out


def merge_methods(*, per_layer: bool = False) -> list[str]:
    from spectral.methods import REGISTRY
    from spectral.plugins import load_plugins

    load_plugins()  # plugin methods (SPECTRAL_PLUGINS, entry points) appear on every page; failures never raise

    return [n for n, m in REGISTRY.items() if m.kind == "merge" and (m.layer_fn is not None or not per_layer)]


def display_name(method: str) -> str:
    return get_method(method).display_name


# -- Ray cluster (set $SPECTRAL_RAY_ADDRESS) -------------------------------------------------------------------------
@st.cache_data(ttl=15, show_spinner=False)
def _cluster_info(address: str) -> dict[str, Any]:
    from spectral.executor import cluster_info

    return cluster_info(address) or {}


def cluster_sidebar() -> dict[str, Any] | None:
    """The Ray cluster's address and size in the sidebar when ``$SPECTRAL_RAY_ADDRESS`` names one, else None."""
    from spectral.executor import ray_address

    address = ray_address()
    if address is None:
        return None
    with st.sidebar:
        st.subheader("Ray cluster")
        try:
            info = _cluster_info(address)
        except Exception as err:  # noqa: BLE001 - an unreachable cluster: say so, the pages still run here
            st.warning(f"Ray cluster {address} unreachable: {err}")
            return None
        nodes = f"{info['nodes']} node" + ("" if info["nodes"] == 1 else "s")
        st.caption(f"`{address}` · {nodes} · {info['cpus']:g} CPUs · {info['gpus']:g} GPUs")
    return info


def run_on_cluster(ws: Workspace, kind: str, settings: dict[str, Any], key: str) -> None:
    """When a cluster is configured, offer to compute a sweep figure's missing points on it (each point a Ray
    unit; this process stores the results), and wait for them; the figure then reads every point from the store."""
    from spectral.app_state import freeze
    from spectral.eval.distributed import compute_missing, page_sweep_plan
    from spectral.executor import RayExecutor, ray_address

    address = ray_address()
    plan = page_sweep_plan(kind, settings)
    if address is None or plan is None:
        return
    try:
        _cluster_info(address)
    except Exception:  # noqa: BLE001 - the sidebar says why; the sweep runs here
        return
    if not st.toggle("Run on the Ray cluster", value=True, key=f"ray_{key}", persist_state="session",
                     help=f"Every missing point is a Ray task on {address}; results come back to this app's store."):
        return

    def work(progress: Any) -> int:
        return compute_missing(ws.evaluator, plan, RayExecutor(address), pool_spec=ws.spec, progress=progress)

    job = ws.jobs.submit(("ray", kind, freeze(settings)), work, label=f"{kind} on the Ray cluster")
    computed = wait_for(job, f"Computing the sweep's points on the Ray cluster ({address})")
    if computed:
        st.caption(f"{computed} points computed on the Ray cluster.")


def adapt_on_cluster(ws: Workspace, config: Any, *, disabled: bool = False) -> None:
    """When a cluster is configured, a button that runs this adaptation as one Ray unit (its checkpoint lands in
    the shared cache); the page's Load result then reads the finished run and evaluates it here."""
    import dataclasses
    from pathlib import Path

    from spectral.adapt.commands import adapt_unit
    from spectral.cache import default_cache_dir
    from spectral.executor import RayExecutor, Unit, ray_address

    address = ray_address()
    if address is None:
        return
    if not st.button("Run on the Ray cluster", key="ad_ray", disabled=disabled, icon=":material/hub:",
                     help=f"One Ray task on {address}; the checkpoint goes to the shared cache"):
        return
    cache_dir = str(Path(ws.cache_dir or default_cache_dir()).resolve())

    def work(progress: Any) -> dict[str, Any]:
        executor = RayExecutor(address)
        gpus = 1.0 if executor.gpus() > 0 else 0.0
        unit = Unit(key=config.label, fn=adapt_unit, label=config.label, num_gpus=gpus,
                    kwargs={"pool": ws.spec, "cache_dir": cache_dir, "device": "auto" if gpus else "cpu",
                            "trust_pickle": False, "config": dataclasses.asdict(config)})
        return next(iter(executor.run([unit], progress))).value

    job = ws.jobs.submit(("ray-adapt", config), work, label=f"{config.label} on the Ray cluster")
    with guard("Running on the Ray cluster"):
        done = wait_for(job, f"{config.label} on the Ray cluster ({address})")
        st.success(f"Step {done['step']} reached on the cluster: press **Load result** to evaluate it here.")
