"""Merge lab: pick methods, move the sliders built from each method's declared parameters (bound to the URL) and
watch the merged models' per-dataset accuracy update as a radar (TSV Fig. 4), with a table of absolute and normalised
accuracy and NAI (Iso Eq. 4). Stored test-time adaptation results (AdaRank, AdaMerging; trained on the Adaptation
page) can be drawn next to them."""
from __future__ import annotations

import time

import streamlit as st

from pages import _ui
from spectral import analysis, serving
from spectral.adapt.session import stored_adaptations
from spectral.adapt.store import adapted_runs

st.title("Merge lab")
ws = _ui.workspace()
T = len(ws.task_names)

methods = st.multiselect("Methods", _ui.merge_methods(), default=["task_arithmetic", "tsv_m", "iso_cts"],
                         key="ml_methods", format_func=_ui.display_name, bind="query-params", persist_state="session")

runs = None
with _ui.guard("Reading stored adaptation results"):
    runs = adapted_runs(stored_adaptations(ws))
adapted: list[str] = []
if runs is not None and len(runs):
    rule = {"last": "last step", "min_entropy": "lowest entropy"}
    described = {r.ref: f"{r.name} · step {r.selected_step} of {r.steps_done} ({rule.get(r.selection, r.selection)})"
                        f" · mean {r.mean_accuracy:.1f} %" for r in runs.itertuples()}
    newest_per_label = list(runs.drop_duplicates("label")["ref"])
    adapted = st.multiselect("Test-time adaptation results (stored)", list(described), default=newest_per_label,
                             key="ml_adapted", format_func=described.get, persist_state="session",
                             help="AdaRank and AdaMerging learn on unlabelled test images; their results are read "
                                  "from the results store (never recomputed here) and drawn dash-dotted.")
elif runs is not None:
    st.caption("No AdaRank or AdaMerging result is stored for this pool yet: run one on the Adaptation page "
               "and it appears here next to the static merges.")


@st.fragment
def lab() -> None:
    t0, cpu0 = time.perf_counter(), time.thread_time()
    try:
        lab_body()
    finally:
        serving.trace("merge_lab", session=_ui.session_id(), s=round(time.perf_counter() - t0, 3),
                      cpu_s=round(time.thread_time() - cpu0, 3), estimate=st.session_state.get("ml_refining")
                      is not None)


def lab_body() -> None:
    if not methods:
        st.info("Choose at least one method.")
        return
    params = _ui.method_params(methods, T, "ml", ranks=_ui.pool_ranks(ws))
    with st.expander("Export as a mergekit YAML"):
        export_mergekit(params)
    # a decoder-LLM task scored on its text file: (loss_base - loss) / (loss_base - loss_ft), base 0, fine-tune 100
    loss_tasks = ws.pool.family != "clip" and any(ws.pool.metric(t) == "normalised" for t in ws.pool.task_names)
    value = st.radio("Radar shows", ["accuracy", "normalised"], horizontal=True, key="ml_value",
                     format_func=lambda v: ("absolute accuracy (%)" if ws.pool.family == "clip"
                                            else "score (%; token loss normalised: base 0, fine-tune 100)"
                                            if loss_tasks else "absolute score (%; MCC for CoLA)") if v == "accuracy"
                     else "normalised accuracy" if ws.pool.family == "clip" else "normalised score",
                     bind="query-params", persist_state="session")
    settings = {"methods": methods, "params": params, "value": value, "adapted": adapted}
    # On pools with large test splits: a stratified subsample first (seconds), the whole split in the background.
    # Under load (other sessions' merges queued), small splits get a quicker estimate too, refined the same way.
    busy = _ui.server_busy(ws, "radar", settings)
    live_n = ws.live_subsample(busy=busy)
    if live_n is None and st.session_state.get("ml_refining") == settings:
        # the estimate on screen stays until its refinement is done (the page's own rerun would otherwise wait,
        # in the foreground, for the whole split the estimate stands in for)
        live_n = st.session_state.get("ml_estimate_n")
    st.session_state["ml_estimate_n"] = live_n
    estimate = live_n is not None and not _ui.figure_ready(ws, "radar", settings)
    shown = {**settings, "subsample": live_n} if estimate else settings
    failed = st.session_state.get("ml_refine_failed") or {}
    refining = estimate and failed.get("settings") != settings
    st.session_state["ml_refining"] = settings if refining else None
    if estimate and not refining:
        st.error(failed.get("error"))
    left, right = st.columns([3, 2])
    with left:
        caption = ("Per-dataset accuracy of each merge against the zero-shot model and each task's own fine-tuned "
                   "model (TSV Fig. 4).")
        if estimate:
            caption += (f" **Estimate** from a fixed, class-stratified subsample of {live_n} test images per task; "
                        "bars: 95% Wilson intervals. The whole test split is being evaluated in the background"
                        + (" once the server is free: other sessions' merges are queued." if busy
                           and ws.live_subsample() is None else "."))
        data = _ui.show_figure(ws, "radar", shown, key="radar", caption=caption)
    with right:
        if data is not None:
            mean, wide = analysis.accuracy_display(data.table)
            st.subheader("Mean over tasks" + (" (estimate)" if estimate else ""))
            st.dataframe(mean, hide_index=True, width="stretch")
            st.subheader("Per task" + (" (estimate, ± 95% interval)" if estimate else ""))
            st.dataframe(wide, width="stretch")
            if estimate:
                st.caption(f"± : half-width of the 95% Wilson interval from {live_n} images per task (mean: normal "
                           "approximation over tasks). Exact numbers replace these when the full split is done.")
            elif live_n is not None:
                st.caption("Exact: every number rests on the whole test split.")
            _ui.table_download("Per-task table (CSV)", data.table, f"merge-lab-{ws.spec}.csv".replace("/", "_"),
                               "dl_ml_table")
            published_beside(analysis.accuracy_summary(data.table))
    if refining:
        # The whole split, in the background (memoised when done), started once the estimate is on screen.
        _ui.figure_job(ws, "radar", settings, slot="radar_refine")
        if st.session_state.get("ml_polling") is False:
            # Only this fragment reran (a slider move) and no poller is registered: one app rerun registers it.
            # The poller exists only while a refinement runs, so an idle page exchanges no messages.
            st.rerun(scope="app")


def export_mergekit(params: dict) -> None:
    """One chosen merge as a mergekit-style YAML (issue 25): `python -m spectral merge --mergekit-config FILE -o OUT`
    runs it; mergekit itself runs task_arithmetic and ties (trim per_tensor) configs."""
    from spectral.mergekit import pool_yaml

    chosen = st.selectbox("Merge", methods, key="ml_mk_method", format_func=_ui.display_name)
    with _ui.guard("Writing the mergekit YAML"):
        text, real = pool_yaml(ws.pool, chosen, params[chosen])
        st.code(text, language="yaml")
        st.caption("Run it with `python -m spectral merge --mergekit-config merge.yml -o OUT_DIR`."
                   + ("" if real else " This pool's models are not files: replace the PATH/TO/… placeholders."))
        st.download_button("mergekit YAML", text.encode(), file_name=f"merge-{chosen}.yml",
                           mime="application/x-yaml", key="dl_ml_mergekit", on_click="ignore")


def published_beside(summary) -> None:
    """The seed papers' published numbers for the chosen methods at this task count, marked as published."""
    from spectral import published

    architecture = getattr(ws.pool, "architecture", None)
    rows = published.published_for(methods, T, architecture)
    if not len(rows):
        return
    st.subheader("Published", help=published.caption(architecture, T))
    st.caption(published.caption(architecture, T))
    st.dataframe(published.beside(summary, rows).style.format(
        {"yours (%)": "{:.2f}", "published (%)": "{:.2f}", "published normalised (%)": "{:.2f}"}, na_rep="—"),
        hide_index=True, width="stretch")


#: seconds between two looks at a running background refinement (no polling when none runs)
REFINE_POLL_S = 1.0


@st.fragment(run_every=REFINE_POLL_S)
def refinement() -> None:
    """Watches the whole-split evaluation of the estimate on screen and swaps it in when done.

    Called only while an estimate is being refined (the end of this page): when its job is done, or the estimate
    left the screen, one app rerun swaps the exact numbers in and no longer calls this fragment, so its timer
    stops and an idle Merge lab exchanges no messages with the server.
    """
    settings = st.session_state.get("ml_refining")
    if not settings:
        st.rerun(scope="app")  # nothing to refine any more: stop polling
    job = _ui.figure_job(ws, "radar", settings, slot="radar_refine")
    if job.done:
        if job.failed:
            st.session_state["ml_refine_failed"] = {
                "settings": settings, "error": f"Evaluating the whole test split failed: {job.error}"}
        st.session_state["ml_refining"] = None
        st.rerun(scope="app")
    st.progress(job.fraction, text=f"Refining to the whole test split: {job.text}")


st.session_state["ml_polling"] = None  # decided below, after the lab drew (None: a full run is under way)
lab()
polling = bool(st.session_state.get("ml_refining"))
st.session_state["ml_polling"] = polling
if polling:
    refinement()
