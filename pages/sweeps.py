"""Sweeps: accuracy against the TSV-C rank fraction (TSV Fig. 2), α sensitivity (Iso Fig. 8), the Iso-CTS
common-subspace fraction (Iso Fig. 6) and the TSV Table 4 ablation. Long sweeps run as background jobs with a
progress bar; their evaluations are memoised, so moving back to an earlier setting is instant."""
from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from pages import _ui
from spectral.app_state import registered_pools
from spectral.figures import registry

st.title("Sweeps")
ws = _ui.workspace()
T = len(ws.task_names)

small = ws.spec.startswith(("zoo-", "lm-zoo-", "lora-zoo-")) or ws.spec in registered_pools()
auto = st.toggle("Run sweeps automatically", value=small, key="sw_auto", persist_state="session",
                 help="On for the demo zoo (seconds); on real checkpoints each point merges and evaluates a model, "
                      "so sweeps start from their Run button.")


def sweep(kind: str, settings: dict[str, Any], key: str, caption: str) -> None:
    resolved = registry.resolve_settings(kind, settings)
    dkey = registry.data_key(kind, resolved)
    running = ws.jobs.get(dkey)
    if dkey not in ws.memo and not auto and (running is None or running.done):
        if not st.button("Run sweep", key=f"run_{key}", type="primary"):
            st.info("Press **Run sweep** to merge and evaluate every point (it keeps running if you switch pages).")
            return
    if dkey not in ws.memo:
        _ui.run_on_cluster(ws, kind, resolved, key)
    _ui.show_figure(ws, kind, settings, key=key, caption=caption)


def published_beside_sweep(methods: list[str], settings: dict[str, Any]) -> None:
    """Each method's best point of the α sweep next to the seed papers' published number (marked as published)."""
    from spectral import published

    data = ws.memo.get(registry.data_key("alpha_sweep", registry.resolve_settings("alpha_sweep", settings)))
    architecture = getattr(ws.pool, "architecture", None)
    rows = published.published_for(methods, T, architecture, include_references=False)
    if data is None or not len(rows):
        return
    means = data.table.groupby(["model", "value"], sort=False).accuracy.mean().groupby(level=0).max()
    best = means.rename("accuracy").reset_index()
    st.caption(f"{published.caption(architecture, T)}. *Yours*: the best mean accuracy over this α grid (chosen on "
               "the test split here; the papers choose α on validation).")
    st.dataframe(published.beside(best, rows).style.format(
        {"yours (%)": "{:.2f}", "published (%)": "{:.2f}", "published normalised (%)": "{:.2f}"}, na_rep="—"),
        hide_index=True, width="stretch")


#: the four sweeps; only the one chosen is computed (st.tabs would run, and so compute, every tab on each visit)
VIEWS = {"rank": "Rank fraction (TSV-C)", "alpha": "α sensitivity", "common": "Common subspace (Iso-CTS)",
         "ablation": "Ablation (TSV Table 4)"}


def rank_view() -> None:
    c1, c2 = st.columns([3, 1])
    lo, hi = c1.slider("Rank fraction range", 0.005, 1.0, (0.01, 1.0), 0.005, key="sw_rank_range",
                       bind="query-params", persist_state="session")
    points = c2.slider("Points", 3, 12, 8, key="sw_rank_points", bind="query-params", persist_state="session")
    fractions = sorted({round(float(f), 4) for f in np.geomspace(lo, hi, points)}) if hi > lo else [round(lo, 4)]
    log_x = st.toggle("log x axis", value=True, key="sw_rank_log", bind="query-params", persist_state="session")
    sweep("rank_sweep", {"fractions": fractions, "log_x": log_x}, "rank_sweep",
          "Each task compressed to its top-k singular components (TSV-C) and evaluated on its own task. TSV (Fig. 2) "
          "found that a few percent of the rank keeps almost all of the fine-tuned accuracy.")


def alpha_view() -> None:
    c1, c2, c3 = st.columns([2, 2, 1])
    methods = c1.multiselect("Methods", [m for m in _ui.merge_methods() if m != "weight_average"],
                             default=["task_arithmetic", "iso_c", "iso_cts"], key="sw_alpha_methods",
                             format_func=_ui.display_name, bind="query-params", persist_state="session")
    a_lo, a_hi = c2.slider("α range", 0.0, 3.0, (0.1, 2.5), 0.05, key="sw_alpha_range", bind="query-params",
                           persist_state="session")
    n = c3.slider("Points", 3, 15, 9, key="sw_alpha_points", bind="query-params", persist_state="session")
    alphas = sorted({round(float(a), 4) for a in np.linspace(a_lo, a_hi, n)})
    if methods:
        sweep("alpha_sweep", {"methods": methods, "alphas": alphas}, "alpha_sweep",
              "Iso (Fig. 8) found Task Arithmetic sensitive to α and Iso-C and Iso-CTS flatter. Stars mark each "
              "method's best α on this pool (other parameters at their defaults).")
        published_beside_sweep(methods, {"methods": methods, "alphas": alphas})
    else:
        st.info("Choose at least one method.")


def common_view() -> None:
    c1, c2 = st.columns([3, 1])
    alpha = c1.slider("α of Iso-CTS and Iso-C", 0.0, 3.0, 1.5, 0.05, key="sw_common_alpha", bind="query-params",
                      persist_state="session")
    n = c2.slider("Points", 3, 11, 9, key="sw_common_points", bind="query-params", persist_state="session")
    fracs = sorted({round(float(f), 4) for f in np.linspace(0.0, 1.0, n)})
    sweep("common_frac_sweep", {"fractions": fracs, "alpha": alpha}, "common_frac_sweep",
          "At k/r = 1 Iso-CTS is Iso-C. Iso (Fig. 6) found that task-specific directions help more as the number "
          "of tasks grows.")


def ablation_view() -> None:
    select_alpha = st.toggle("Choose α on the validation split (0.1 … 2.0, as the paper)", value=True,
                             key="sw_ablation_select", bind="query-params", persist_state="session",
                             help="Off: each method's default α (Task Arithmetic 0.3, TSV 1.0)")
    settings_ablation = {"select_alpha": select_alpha}
    sweep("ablation", settings_ablation, "ablation",
          "TSV (Table 4) found that low-rank approximation alone does not help, interference reduction does, and "
          "both together (TSV-M) help most. k = r/T wherever the rank is truncated.")
    data = ws.memo.get(registry.data_key("ablation", registry.resolve_settings("ablation", settings_ablation)))
    if data is not None:
        st.dataframe(data.table.style.format({"accuracy": "{:.2f}", "delta": "{:+.2f}", "alpha": "{:.2f}"}),
                     hide_index=True, width="stretch")


view = st.segmented_control("Sweep", list(VIEWS), default="rank", format_func=VIEWS.get, key="sw_view",
                            bind="query-params", persist_state="session", required=True,
                            help="Only the sweep shown is computed; the others start when you open them.")
{"rank": rank_view, "alpha": alpha_view, "common": common_view, "ablation": ablation_view}[view or "rank"]()
