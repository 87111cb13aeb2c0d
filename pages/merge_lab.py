"""Merge lab: pick methods, move the sliders built from each method's declared parameters (bound to the URL) and
watch the merged models' per-dataset accuracy update as a radar (TSV Fig. 4), with a table of absolute and normalised
accuracy and NAI (Iso Eq. 4). Stored test-time adaptation results (AdaRank, AdaMerging; trained on the Adaptation
page) can be drawn next to them."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral import analysis
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
    if not methods:
        st.info("Choose at least one method.")
        return
    params = _ui.method_params(methods, T, "ml")
    value = st.radio("Radar shows", ["accuracy", "normalised"], horizontal=True, key="ml_value",
                     format_func=lambda v: "absolute accuracy (%)" if v == "accuracy" else "normalised accuracy",
                     bind="query-params", persist_state="session")
    left, right = st.columns([3, 2])
    with left:
        data = _ui.show_figure(ws, "radar", {"methods": methods, "params": params, "value": value,
                                                   "adapted": adapted}, key="radar",
                               caption="Per-dataset accuracy of each merge against the zero-shot model and each "
                                       "task's own fine-tuned model (TSV Fig. 4).")
    with right:
        if data is not None:
            st.subheader("Mean over tasks")
            summary = analysis.accuracy_summary(data.table)
            st.dataframe(summary.style.format({"accuracy": "{:.2f}", "normalised": "{:.3f}", "nai": "{:.3f}"}),
                         hide_index=True, width="stretch")
            st.subheader("Per task")
            wide = data.table.pivot(index="task", columns="model", values="accuracy")
            wide = wide[list(dict.fromkeys(data.table.model))]
            st.dataframe(wide.style.format("{:.1f}"), width="stretch")
            _ui.table_download("Per-task table (CSV)", data.table, f"merge-lab-{ws.spec}.csv".replace("/", "_"),
                               "dl_ml_table")
            published_beside(summary)


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


lab()
