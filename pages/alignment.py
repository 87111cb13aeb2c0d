"""Alignment: the pairwise SAR_avg matrix (Iso Eq. 5-6, Fig. 3b) and SAR_avg against NAI for Task Arithmetic and
Iso-C with Pearson's r (Iso Fig. 3a)."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral import analysis
from spectral.figures.captions import alignment_caption

st.title("Alignment")
ws = _ui.workspace()

st.caption("SAR(Δ_src, Δ_trg; k_M) = ‖Π_{k_M, trg} Δ_src‖_F / ‖Δ_src‖_F, with Π the projector on the target's top "
           "k_M left singular vectors and k_M the smallest rank that keeps the merged matrix's residual within "
           "ε ‖Δ_M‖_F (Iso Eq. 6); SAR_avg averages over the matrix layers.")


@st.fragment
def alignment_section() -> None:
    c1, c2 = st.columns(2)
    eps = c1.slider("ε (Iso Eq. 6)", 0.01, 0.5, 0.05, 0.01, key="al_eps", bind="query-params",
                    persist_state="session")
    k_rule = c2.radio("k_M rule", ["paper", "energy"], horizontal=True, key="al_krule", bind="query-params",
                      persist_state="session",
                      format_func=lambda r: "paper (Eq. 6)" if r == "paper" else "official script (energy > 0.95)")
    left, right = st.columns(2)
    with left:
        st.subheader("Pairwise SAR_avg")
        _ui.show_figure(ws, "sar_matrix", {"eps": eps, "k_rule": k_rule}, key="sar_matrix",
                        caption="Iso Fig. 3b: rows are source tasks, columns targets, k_M from Task Arithmetic.")
    with right:
        st.subheader("SAR_avg against NAI")
        methods = st.multiselect("Merges", _ui.merge_methods(per_layer=True), default=list(analysis.ALIGNMENT_METHODS),
                                 key="al_methods", format_func=_ui.display_name, bind="query-params",
                                 persist_state="session")
        if len(methods) == 0:
            st.info("Choose at least one merge.")
            return
        data = _ui.show_figure(ws, "sar_nai", {"eps": eps, "k_rule": k_rule, "methods": methods}, key="sar_nai",
                               caption=lambda d: alignment_caption(d.meta["pearson_r"])
                               + " Merges use each method's default parameters.")
        if data is not None:
            cols = st.columns(max(1, len(data.meta["pearson_r"])))
            for col, (model, r) in zip(cols, data.meta["pearson_r"].items()):
                col.metric(f"Pearson's r · {model}", "undefined" if r is None else f"{r:.2f}")


alignment_section()
