"""Task vectors: per-layer norms, cosine similarity of the flattened task vectors (Iso Fig. 2a), summary table."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral import analysis

st.title("Task vectors")
ws = _ui.workspace()
assert ws.taskset is not None
blocks = sorted({b for b in analysis.layers(ws.taskset).block if b >= 0})


@st.fragment
def norms_section() -> None:
    st.subheader("Per-layer norms ‖Δₜ‖_F")
    c1, c2 = st.columns([3, 1])
    if len(blocks) > 1:
        lo, hi = c1.slider("Transformer blocks shown", blocks[0], blocks[-1], (blocks[0], blocks[-1]),
                           key="tv_blocks", bind="query-params", persist_state="session")
    else:
        lo, hi = (blocks[0], blocks[0]) if blocks else (0, 0)
    log_y = c2.toggle("log scale", value=False, key="tv_log", bind="query-params", persist_state="session")
    _ui.show_figure(ws, "task_norms", {"log_y": log_y, "blocks": [int(lo), int(hi)]}, key="task_norms",
                    caption="Frobenius norm of every task's Δ in each matrix layer; layers outside the transformer "
                            "blocks (positional embedding, proj) are always shown.")


norms_section()

left, right = st.columns(2)
with left:
    st.subheader("Cosine similarity")
    _ui.show_figure(ws, "cosine", {}, key="cosine",
                    caption="cos(vec τᵢ, vec τⱼ) over every parameter (Iso Fig. 2a): task vectors are nearly "
                            "orthogonal, which alone does not predict how well they merge.")
with right:
    st.subheader("Summary")
    energy = st.slider("Energy for the effective rank", 0.5, 0.999, 0.95, 0.005, key="tv_energy",
                       bind="query-params", persist_state="session",
                       help="effective rank: smallest k whose top-k σ² hold this fraction of Σσ² (AdaRank Fig. 3)")
    with _ui.guard("Summary"):
        job = ws.compute(("task_summary", round(energy, 6)),
                         lambda progress: analysis.task_summary(ws.engine, energy=energy, progress=progress),
                         label="task summary")
        summary = _ui.wait_for(job, "Summarising task vectors…")
        st.dataframe(summary.round(4), hide_index=True, width="stretch")
        _ui.table_download("CSV", summary, f"task-summary-{ws.spec}.csv".replace("/", "_"), "dl_task_summary")
