"""Adaptation: AdaRank (on Task Arithmetic or CART) and AdaMerging by test-time entropy minimisation.

Start, stop and resume a run; it optimises in a background thread owned by a cached run registry, so this page
and the others stay usable. The views show the learned masks (AdaRank Fig. 5), kept rank per task and layer, λ,
the traces, and the selected model's accuracy next to its static base merge. Everything computed here comes from
:mod:`spectral.adapt` and :mod:`spectral.figures.adapt`.
"""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral import analysis
from spectral.adapt import AdaptConfig, RunRegistry
from spectral.adapt.outputs import masks_bytes, merged_bytes
from spectral.adapt.run import paper_lr
from spectral.adapt.session import adaptation_for, base_accuracy, evaluate_and_store, evaluate_result, shared_registry
from spectral.adapt.tables import kept_rank_table, lambda_table, mask_table, trace_table
from spectral.errors import ParameterError
from spectral.taskset import block_index
from spectral.figures import accuracy as acc_fig
from spectral.figures import adapt as fig

POLL_S = 1.0


@st.cache_resource(show_spinner=False)
def _registry() -> RunRegistry:
    """Background runs, shared by every session and surviving page switches."""
    return shared_registry()


st.title("Test-time adaptation")
st.caption(
    "**AdaRank** learns a binary mask over every task's singular components in each attention / MLP matrix "
    "(Eq. 5; straight-through sigmoid(logit/10)) and λ per task and layer, by minimising the prediction entropy "
    "on unlabelled test images. **AdaMerging** learns only λ (task-wise or layer-wise). The result is the last "
    "step or the step of lowest entropy on fixed unlabelled images — never chosen by test accuracy."
)
ws = _ui.workspace()
registry = _registry()
T = len(ws.task_names)

# -- settings ----------------------------------------------------------------------------------------------------------
common = dict(bind="query-params", persist_state="session")
c1, c2, c3 = st.columns(3)
method = c1.radio("Method", ["adarank", "adamerging"], key="ad_method", horizontal=True,
                  format_func=lambda m: {"adarank": "AdaRank", "adamerging": "AdaMerging"}[m], **common)
base = c2.radio("Base merge", ["task_arithmetic", "cart"], key="ad_base", horizontal=True,
                format_func=lambda b: {"task_arithmetic": "Task Arithmetic", "cart": "CART"}[b],
                help="TA starts from all components (mask = 1); CART from the top-k of Δ_t − mean Δ", **common)
modes = ["layer", "task", "frozen"] if method == "adarank" else ["layer", "task"]
lambda_mode = c3.radio("λ", modes, key=f"ad_lambda_{method}", horizontal=True,
                       format_func=lambda m: {"layer": "per task & layer", "task": "per task", "frozen": "fixed"}[m],
                       help="Merging coefficients learned jointly with the masks, or kept at their initial value",
                       **common)
default_lr = paper_lr(ws.pool)
examples = "images" if ws.pool.family == "clip" else "examples"
with st.expander(f"Optimisation settings (paper defaults: Adam, lr {default_lr:g}, 16 {examples} per task per step)"):
    s1, s2, s3, s4 = st.columns(4)
    steps = s1.number_input("Steps", 1, 20000, 100, 10, key="ad_steps", **common)
    lr = s2.select_slider("Learning rate", [1e-5, 3e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1], default_lr,
                          key="ad_lr", format_func=lambda v: f"{v:g}", **common)
    batch = s3.number_input(f"{examples.capitalize()} per task per step", 1, 256, 16, key="ad_batch", **common)
    seed = s4.number_input("Seed", 0, 10_000, 0, key="ad_seed", **common)
    s5, s6, s7, s8 = st.columns(4)
    auto_lambda = adaptation_for(ws, AdaptConfig(method=method, base=base, lambda_mode="layer")).lambda_init
    lambda_init = s5.number_input("Initial λ", 0.0, 5.0, float(auto_lambda), 0.05, key=f"ad_lambda_init_{base}",
                                  help="Default: the base method's α (TA 0.3, AdaRank App. A)", **common)
    k_frac = s6.slider("CART initial rank k/r", 0.02, 0.64, 0.16, 0.02, key="ad_k_frac", disabled=base != "cart",
                       help="AdaRank tried 8, 12, 16 and 32 % (0.16 in its 8-task ViT-B/32 configuration)", **common)
    selection = s7.radio("Result", ["last", "min_entropy"], key="ad_selection",
                         format_func=lambda s: {"last": "last step", "min_entropy": "lowest entropy"}[s],
                         help="Both rules use no labels. Lowest entropy: on fixed unlabelled test images, "
                              "evaluated every few steps.", **common)
    select_every = s8.number_input("Selection check every (steps)", 1, 1000, 10, key="ad_select_every", **common)
    eval_every = st.number_input(
        "Record test accuracy every (steps; 0 = never)", 0, 10_000, 0, key="ad_eval_every",
        help="Uses the test labels. Shown as a reference trace only; the result is never chosen by it.", **common)

_ui.url_warnings()  # URL values these settings rejected

try:
    config = AdaptConfig(method=method, base=base, lambda_mode=lambda_mode, lambda_init=float(lambda_init),
                         k_frac=float(k_frac), steps=int(steps), lr=float(lr), batch_size=int(batch),
                         seed=int(seed), selection=selection, select_every=int(select_every),
                         eval_every=int(eval_every))
except ParameterError as err:
    st.error(str(err), icon="⚠️")
    st.stop()

run = adaptation_for(ws, config)
run_id = run.run_id
handle = registry.get(run_id)
running = handle is not None and handle.running
saved = run.checkpoint_step() if handle is None else None

# -- controls ------------------------------------------------------------------------------------------------------------
b1, b2, b3, b4 = st.columns([2, 1, 1, 3])
start_label = "Start" if not saved else (f"Resume from step {saved}" if saved < config.steps else "Load result")
if handle is not None and not running and handle.adaptation.step > 0:
    start_label = "Resume" if handle.adaptation.step < config.steps else "Reload result"
if b1.button(start_label, key="ad_start", type="primary", disabled=running, icon=":material/play_arrow:"):
    with _ui.guard("Starting the run"):
        handle = registry.start(run if handle is None else handle.adaptation, steps=config.steps,
                                on_done=lambda result: evaluate_and_store(ws, result), session=_ui.session_id())
        running = True
if b2.button("Stop", key="ad_stop", disabled=not running, icon=":material/stop:"):
    registry.stop(run_id)
if b3.button("Start over", key="ad_fresh", disabled=running or (not saved and handle is None),
             icon=":material/restart_alt:", help="Discard this run's checkpoint"):
    run.checkpoint_path.unlink(missing_ok=True)
    registry.forget(run_id)
    st.rerun()
b4.caption(f"{config.label} · run `{run_id}` · {T} tasks")
_ui.adapt_on_cluster(ws, config, disabled=running)


@st.fragment(run_every=POLL_S if running else None)
def status_panel() -> None:
    """Progress of the background run, polled; when the run ends, one full rerun shows the results."""
    current = registry.get(run_id)
    if current is None:
        st.info("Not started." if not saved else f"A checkpoint at step {saved} exists: resume or load it.")
        return
    current.waiters.add(_ui.session_id())  # this session watches the run: it keeps running while one does
    status = current.status()
    done, total = status["progress"]
    text = status["text"]
    if status["error"]:
        st.error(f"The run failed: {status['error']}", icon="⚠️")
    state = status["state"]
    if state == "finished" and current.running:
        state = "finished, evaluating"  # the last step is done; the result is being evaluated and stored
    st.progress(min(1.0, status["step"] / max(1, status["steps"])),
                text=f"{state}: step {status['step']}/{status['steps']} · {text[-80:]}")
    per_step = status["seconds_per_step"]
    if per_step:
        st.caption(f"{per_step:.3f} s per step on {ws.engine.device}")
    traces = current.adaptation.traces_copy()
    if traces["step"]:
        st.plotly_chart(fig.entropy_trace_figure(traces), key="chart_ad_live", theme="streamlit")
    if running and not current.running:
        # The page was drawn while the run was going (Stop enabled, no results). Rerun the whole page now that
        # the thread has ended. This must not depend on having seen a new state: the run reaches "finished" at
        # its last step and only then evaluates and stores its result, so the last state change happens while
        # the thread still runs, and the poll that sees the thread gone sees no new state.
        st.rerun(scope="app")


status_panel()

# -- results -------------------------------------------------------------------------------------------------------------
result = handle.result if handle is not None and not running else None
if result is None:
    st.stop()

st.subheader(f"{result.label}: step {result.step}"
             + ("" if result.finished else f" of {result.config.steps} (stopped)"))
rule = "last step" if result.selection == "last" else "lowest entropy on fixed unlabelled test images"
st.caption(f"Selected: step {result.selected_step} ({rule}); chosen without labels.")
tab_masks, tab_rank, tab_lambda, tab_traces, tab_acc, tab_dl = st.tabs(
    ["Masks", "Kept rank", "λ", "Traces", "Accuracy", "Downloads"])

with tab_masks:
    if not result.masks:
        st.info("AdaMerging learns no masks; see λ.")
    else:
        labels = {k: analysis.layer_label(k) for k in result.masks}
        keys = list(result.masks)
        blocks = sorted({block_index(k) for k in keys if block_index(k) is not None})
        default = [labels[k] for k in keys if block_index(k) in (blocks[0], blocks[-1])] if blocks else []
        chosen = st.multiselect("Layers", list(labels.values()), default=default[:8], key="ad_mask_layers")
        changes = st.checkbox("Colour components switched on / off by the adaptation", key="ad_mask_changes")
        by_label = {v: k for k, v in labels.items()}
        mfig = fig.mask_figure(result.masks, result.task_names, layers=[by_label[c] for c in chosen],
                               labels=labels, initial=result.initial_masks, show_changes=changes)
        st.plotly_chart(mfig, key="chart_ad_masks", theme="streamlit")
        st.caption("Rows: tasks; columns: singular components in descending σ; dark = kept (AdaRank Fig. 5).")

with tab_rank:
    table = kept_rank_table(result)
    if table.empty:
        st.info("No masked layers.")
    else:
        value = st.radio("Show", ["fraction", "kept"], key="ad_rank_value", horizontal=True,
                         format_func=lambda v: "kept / r" if v == "fraction" else "kept components")
        st.plotly_chart(fig.kept_rank_figure(table, value=value), key="chart_ad_rank", theme="streamlit")
        kinds = sorted(set(table.kind))
        kind = st.selectbox("Layer kind (lines)", kinds, key="ad_rank_kind")
        st.plotly_chart(fig.kept_rank_lines_figure(table, kind=kind), key="chart_ad_rank_lines", theme="streamlit")

with tab_lambda:
    st.plotly_chart(fig.lambda_figure(lambda_table(result)), key="chart_ad_lambda", theme="streamlit")

with tab_traces:
    per_task = st.checkbox("Per task", key="ad_trace_per_task")
    st.plotly_chart(fig.entropy_trace_figure(result.traces, selected_step=result.selected_step, per_task=per_task),
                    key="chart_ad_entropy", theme="streamlit")
    if result.traces["acc_step"]:
        st.plotly_chart(fig.accuracy_trace_figure(result.traces, selected_step=result.selected_step),
                        key="chart_ad_acc_trace", theme="streamlit")
        st.caption("This trace used the test labels and is shown for reference; the selection never reads it.")

with tab_acc:
    with _ui.guard("Evaluating"):
        adapted = _ui.wait_for(ws.compute(("adapt-eval", run_id, result.step, result.selected_step),
                                          lambda p: evaluate_result(ws, result, p), label="evaluate", heavy=True),
                               "Evaluating the selected model…")
        static = _ui.wait_for(ws.compute(("adapt-base", run_id), lambda p: base_accuracy(ws, result, p),
                                         label="evaluate base", heavy=True), "Evaluating the base merge…")
        zeroshot = _ui.wait_for(ws.compute(("accuracy", "zeroshot", ()),
                                           lambda p: ws.accuracies("zeroshot", None, p), label="zero-shot", heavy=True),
                                "Evaluating the zero-shot model…")
        finetuned = _ui.wait_for(ws.compute(("accuracy", "finetuned", ()),
                                            lambda p: ws.accuracies("finetuned", None, p), label="fine-tuned", heavy=True),
                                 "Evaluating the fine-tuned models…")
        base_label = {"task_arithmetic": "Task Arithmetic", "cart": "CART"}[result.config.base]
        table = analysis.accuracy_table({base_label: static, result.label: adapted}, zeroshot, finetuned,
                                        {t: ws.pool.metric(t) for t in ws.task_names})
        st.plotly_chart(acc_fig.radar_figure(table), key="chart_ad_radar", theme="streamlit")
        st.dataframe(analysis.accuracy_summary(table), hide_index=True, width="stretch")

with tab_dl:
    stem = f"{config.result_method}-{ws.spec}-{run_id}".replace("/", "_")
    d1, d2, d3 = st.columns(3)
    d1.download_button("Merged model (safetensors)", data=lambda: merged_bytes(result),
                       file_name=f"{stem}.safetensors", on_click="ignore", key="ad_dl_model",
                       icon=":material/download:")
    d2.download_button("Masks (safetensors)", data=lambda: masks_bytes(result),
                       file_name=f"{stem}-masks.safetensors", on_click="ignore", key="ad_dl_masks",
                       icon=":material/download:", disabled=not result.masks)
    with d3:
        _ui.table_download("Traces (CSV)", trace_table(result), f"{stem}-traces.csv", "ad_dl_traces")
    e1, e2, _ = st.columns(3)
    with e1:
        _ui.table_download("Kept rank (CSV)", kept_rank_table(result), f"{stem}-kept-rank.csv", "ad_dl_rank")
    with e2:
        _ui.table_download("λ (CSV)", lambda_table(result), f"{stem}-lambda.csv", "ad_dl_lambda")
    if result.masks:
        _ui.table_download("Masks (CSV, long)", mask_table(result), f"{stem}-masks.csv", "ad_dl_mask_csv")
