"""Interference: Singular Task Interference per layer (TSV Eq. 6, Fig. 6 and 14), the UᵀU / VᵀV block similarity of
one layer with task boundaries (TSV Fig. 3) and a zoom on one task pair, STI before and after TSV-M (TSV Fig. 8)."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral.figures.captions import sti_layers_caption

st.title("Interference")
ws = _ui.workspace()
T = len(ws.task_names)

st.caption("STI (TSV Eq. 6) = ‖(UᵀU − I) Σ (VᵀV − I)‖₁, the entrywise L1 norm, **not normalised**: it grows with "
           "the number of tasks, the rank k and the scale of the task matrices. U and V concatenate each task's top-k "
           "singular vectors; by default k = r/T, TSV-M's operating point.")
c1, c2 = st.columns([1, 3])
default_k = c1.toggle("k = r/T (TSV default)", value=True, key="if_kdefault", bind="query-params",
                      persist_state="session")
k_frac_value = c2.slider("Per-task rank fraction k / r", 0.005, 1.0, round(1.0 / T, 3), 0.005, key="if_kfrac",
                         bind="query-params", persist_state="session", disabled=default_k)
k_frac = None if default_k else k_frac_value


@st.fragment
def per_layer_section() -> None:
    st.subheader("STI per layer")
    log_z = st.toggle("log colour scale", value=False, key="if_logz", bind="query-params", persist_state="session")
    data = _ui.show_figure(ws, "sti_layers", {"k_frac": k_frac, "log_z": log_z}, key="sti_layers",
                           caption=lambda d: sti_layers_caption(d.table))
    if data is not None:
        st.metric("Total STI", f"{data.meta['total']:.4g}")


@st.fragment
def blocks_section() -> None:
    st.subheader("UᵀU and VᵀV of one layer")
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        layer = _ui.layer_select(ws, "if_layer")
    tasks = ws.task_names
    default_a, default_b = (2, 3) if len(tasks) >= 4 else (0, min(1, len(tasks) - 1))
    task_a = c2.selectbox("Task (rows)", tasks, index=default_a, key="if_task_a", bind="query-params",
                          persist_state="session")
    task_b = c3.selectbox("Task (columns)", tasks, index=default_b, key="if_task_b", bind="query-params",
                          persist_state="session")
    matrix = c4.radio("Zoom on", ["V", "U"], horizontal=True, key="if_matrix", bind="query-params",
                      persist_state="session", format_func=lambda m: f"{m}ᵀ{m}")
    _ui.show_figure(ws, "sti_blocks", {"layer": layer, "k_frac": k_frac, "task_a": task_a, "task_b": task_b},
                    key="sti_blocks",
                    caption="TSV Fig. 3: diagonal blocks (one task with itself) are identities; off-diagonal blocks "
                            "show how much two tasks' singular vectors overlap. The red box is zoomed below.")
    _ui.show_figure(ws, "sti_zoom", {"layer": layer, "k_frac": k_frac, "matrix": matrix, "task_a": task_a,
                                     "task_b": task_b}, key="sti_zoom")


def before_after_section() -> None:
    st.subheader("STI before and after TSV-M")
    data = _ui.show_figure(ws, "sti_before_after", {"k_frac": k_frac}, key="sti_before_after",
                           caption="TSV Fig. 8: Procrustes orthogonalisation of the concatenated singular vectors "
                                   "removes the interference (UᵀU = VᵀV = I whenever T·k ≤ r).")
    if data is not None:
        c1, c2 = st.columns(2)
        c1.metric("STI of the task matrices", f"{data.meta['before']:.4g}")
        c2.metric("STI after TSV-M", f"{data.meta['after']:.3g}")


per_layer_section()
blocks_section()
before_after_section()
