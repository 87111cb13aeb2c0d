"""Spectra: singular values of one layer for every task and for the TA, Iso-C, Iso-CTS and TSV-M merges (Iso Fig. 1,
7), cumulative energy and effective rank (AdaRank Fig. 3), the TA → Iso-C interpolation β (Iso Fig. 4a), and the
layer × task effective-rank heatmap."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral import analysis

st.title("Spectra")
ws = _ui.workspace()
assert ws.taskset is not None
T = ws.taskset.num_tasks

c1, c2 = st.columns([1, 2])
with c1:
    layer = _ui.layer_select(ws, "sp_layer")
with c2:
    options = _ui.merge_methods(per_layer=True)
    methods = st.multiselect("Merges", options, default=list(analysis.SPECTRUM_METHODS), key="sp_methods",
                             format_func=_ui.display_name, bind="query-params", persist_state="session")


@st.fragment
def spectra_section() -> None:
    with st.expander("Merge parameters (declared by each method)", expanded=False):
        params = _ui.method_params(methods, T, "sp", per_row=4, ranks=_ui.pool_ranks(ws)) if methods else {}
    c1, c2, c3 = st.columns(3)
    scale = c1.radio("Scale", ["log", "linear"], horizontal=True, key="sp_scale", bind="query-params",
                     persist_state="session")
    normalise = c2.toggle("Divide by σ₁", value=False, key="sp_norm", bind="query-params", persist_state="session")
    energy = c3.slider("Energy threshold", 0.5, 0.999, 0.95, 0.005, key="sp_energy", bind="query-params",
                       persist_state="session", help="effective rank = smallest k holding this fraction of Σσ²")
    settings = {"layer": layer, "methods": methods, "params": params, "energy": energy}
    left, right = st.columns(2)
    with left:
        st.subheader(f"Singular values · {layer}")
        _ui.show_figure(ws, "spectra", {**settings, "log_y": scale == "log", "normalise": normalise}, key="spectra",
                        caption="Thin lines: each task's Δₜ; thick lines: the merged Δ of this layer. Task "
                                "Arithmetic's spectrum is dominated by a few directions; Iso-C flattens it.")
    with right:
        st.subheader("Cumulative energy and effective rank")
        _ui.show_figure(ws, "energy", settings, key="energy",
                        caption="Diamonds mark the effective rank (AdaRank Fig. 3) of each spectrum.")


@st.fragment
def interpolation_section() -> None:
    st.subheader("From Task Arithmetic to Iso-C")
    beta = st.slider("β (0 = Task Arithmetic, 1 = Iso-C)", 0.0, 1.0, 0.5, 0.05, key="sp_beta", bind="query-params",
                     persist_state="session", help="Σ_β = (1 − β) Σ_TA + β σ̄ (Iso Eq. 15)")
    data = _ui.show_figure(ws, "interpolation", {"layer": layer, "beta": beta, "log_y": True}, key="interpolation",
                           caption="Iso Fig. 4a: the spectrum becomes uniform as β → 1 and the number of preserved "
                                   "components k_M (Iso Eq. 6, ε = 0.05; dashed lines) grows.")
    if data is not None:
        st.metric("k_M at this β", data.meta.get("k_M"))


@st.fragment
def effective_rank_section() -> None:
    st.subheader("Effective rank per layer and task")
    c1, c2 = st.columns(2)
    energy = c1.slider("Energy", 0.5, 0.999, 0.95, 0.005, key="sp_er_energy", bind="query-params",
                       persist_state="session")
    value = c2.radio("Show", ["fraction", "effective_rank"], horizontal=True, key="sp_er_value",
                     format_func=lambda v: "k / r" if v == "fraction" else "k", bind="query-params",
                     persist_state="session")
    _ui.show_figure(ws, "effective_rank", {"energy": energy, "value": value}, key="effective_rank",
                    caption="Task matrices are low-rank (TSV §3.2, AdaRank Fig. 3): a small fraction of the singular "
                            "components holds most of the energy.")


@st.fragment
def overaccumulation_section() -> None:
    from spectral.methods.svc import PER_LAYER_BASES

    st.subheader("Over-accumulation and Singular Value Calibration (SVC)")
    c1, c2, c3 = st.columns([2, 2, 1])
    base = c1.selectbox("Base merge", list(PER_LAYER_BASES), key="sp_svc_base", format_func=_ui.display_name,
                        bind="query-params", persist_state="session",
                        help="The merge whose singular values SVC calibrates (Li et al. 2026, Alg. 1)")
    svc_alpha = c2.slider("Calibration floor α_svc", 0.05, 5.0, 1.0, 0.05, key="sp_svc_alpha", bind="query-params",
                          persist_state="session", help="γ_r = T / Σ_t max(α_svc, s_r^t)")
    components = c3.slider("Directions", 4, 64, 24, 4, key="sp_svc_components", bind="query-params",
                           persist_state="session")
    with st.expander(f"{_ui.display_name(base)} parameters", expanded=False):
        base_params = _ui.method_params([base], T, "sp_svc", per_row=1, ranks=_ui.pool_ranks(ws)).get(base, {})
    params = {"base": base, "svc_alpha": svc_alpha, **base_params}
    settings = {"layer": layer, "params": params}
    left, right = st.columns(2)
    with left:
        _ui.show_figure(ws, "svc_coefficients", {**settings, "components": components}, key="svc_coefficients",
                        caption="s_r^t (SVC Eq. 8): how many times task t's response along the merge's r-th "
                                "direction is counted in the merge. Red cells (above α_svc) are over-accumulated: "
                                "shared directions summed once per task.")
    with right:
        _ui.show_figure(ws, "svc_spectrum", {**settings, "log_y": True}, key="svc_spectrum",
                        caption="The merge's singular values before (dotted) and after calibration; grey: γ_r. "
                                "SVC changes only singular values, never directions.")


if not methods:
    st.info("Choose at least one merge to compare.")
spectra_section()
interpolation_section()
effective_rank_section()
overaccumulation_section()
