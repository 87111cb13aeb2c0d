"""Overview: the chosen pool, its tasks and layers, the SVD cache, the merging methods and where to go next."""
from __future__ import annotations

import streamlit as st

import spectral
from pages import _ui
from spectral import analysis
from spectral.data.status import task_data_status

st.title("spectral")
st.write(
    "SVD-based model merging of CLIP ViTs and Hugging Face language models (GPT-2, RoBERTa/BERT, Llama-like "
    "decoders): Task Singular Vectors (TSV-C, TSV-M), isotropic merging (Iso-C, Iso-CTS), "
    "CART, TIES, Consensus, SVC, MagMax, DARE and the baselines (and your own methods, as plugins), over cached singular "
    "value decompositions. Browse the spectra of any "
    "layer, measure task interference (STI) and subspace alignment (SAR), slide α, rank and common-subspace "
    "fractions and watch the merged model respond, then export any figure for a paper."
)

from spectral.plugins import plugin_failures, plugin_source  # noqa: E402

rows = []
for name in spectral.list_methods(kind=None):  # loads plugins (SPECTRAL_PLUGINS, entry points) first
    method = spectral.get_method(name)
    rows.append({"method": method.display_name, "name": name, "paper": method.paper,
                 "parameters": ", ".join(f"{p.name}={p.default}" for p in method.params),
                 "source": f"plugin: {plugin_source(name)}" if plugin_source(name) else "built-in"})
for failure in plugin_failures():
    st.warning(f"Plugin **{failure.source}** was not loaded: {failure.error}", icon="🧩")

def _zoo_comparison(ws) -> None:
    """The demo zoo's "how this zoo compares to real fine-tunes" table (measured once, stored beside the zoo)."""
    from spectral.eval.results import pool_fingerprint
    from spectral.zoo import ZooPool
    from spectral.zoo.report import load_report, report_frame, save_report, zoo_report

    pool = ws.pool
    if not isinstance(pool, ZooPool):
        return
    st.subheader("How this zoo compares to real fine-tunes")
    fingerprint = pool_fingerprint(pool)
    lines = load_report(pool.root, pool.name, fingerprint)
    if lines is None:
        st.caption(f"Not measured yet for {pool.name} (about a minute on a CPU; "
                   f"`python -m spectral zoo report --pool {pool.name}` does the same).")
        if not st.button("Measure", key="zoo_report"):
            return
        lines = _ui.wait_for(ws.compute(("zoo-report",), lambda progress: zoo_report(ws.evaluator, progress=progress),
                                        label="zoo report", heavy=True), "Measuring the zoo")
        save_report(pool.root, pool.name, fingerprint, lines)
    st.dataframe(report_frame(lines, pool.family), hide_index=True, width="stretch")
    st.caption("Papers: CLIP ViT-B/32 fine-tuned on 8 tasks (TSV Tab. 2-3, Iso Tab. 1); test split, α chosen on "
               "validation. The goals are what the demo zoo is built to show: a fine-tuning gap worth closing, "
               "low-rank task matrices, visible interference, nearly orthogonal task vectors.")


ws = _ui.workspace()
assert ws.taskset is not None
c1, c2, c3 = st.columns(3)
c1.metric("Tasks", ws.taskset.num_tasks)
c2.metric("Matrix layers", len(ws.taskset.matrix_keys))
status = ws.cache_status()
c3.metric("SVD cache", f"{status['cached']}/{status['total']}")
st.subheader("Tasks")
st.write(", ".join(f"`{t}`" for t in ws.task_names))
_data = [r.as_row() for r in task_data_status(ws.pool)]  # per task: test data found, and how many images
st.caption(f"Test data found for {sum(r['found'] for r in _data)} of {len(_data)} tasks "
           "(evaluation leaves the others out and names them).")
st.table([{"task": r["task"], "data": "found" if r["found"] else "missing",
           "test images": f"{r['images']:,}" if r["found"] else "—",
           "read from / why not": f"{r['folder'] or ''} ({r['detail']})" if r["found"] else r["detail"]} for r in _data])
with st.expander("Matrix layers (merged as matrices; everything else is merged as a vector)"):
    st.dataframe(analysis.layers(ws.taskset), hide_index=True, width="stretch")

_zoo_comparison(ws)

st.subheader("Merging methods")
st.dataframe(rows, hide_index=True, width="stretch")

st.subheader("Pages")
st.markdown(
    "- **Task vectors**: per-layer norms, cosine similarity of the flattened task vectors, a summary table.\n"
    "- **Spectra**: singular values of a layer for every task and for TA, Iso-C, Iso-CTS and TSV-M; energy and "
    "effective rank; the Task Arithmetic → Iso-C interpolation (Iso Fig. 4a); a layer × task effective-rank map; "
    "SVC's over-accumulation view (s_r^t, the spectrum before and after calibration).\n"
    "- **Interference**: STI per layer (TSV Fig. 6, 14), UᵀU / VᵀV blocks of one layer (TSV Fig. 3), STI before and "
    "after TSV-M (TSV Fig. 8).\n"
    "- **Alignment**: pairwise SAR_avg (Iso Fig. 3b) and SAR_avg against NAI (Iso Fig. 3a).\n"
    "- **Merge lab**: sliders from each method's declared parameters, a live radar of per-task accuracy (TSV Fig. 4).\n"
    "- **Sweeps**: rank fraction (TSV Fig. 2), α (Iso Fig. 8), common fraction (Iso Fig. 6), TSV Table 4 ablation.\n"
    "- **Export**: every figure downloads as PDF, SVG, PNG (paper template), CSV and a settings YAML; "
    "`python -m spectral figure settings.yaml -o figure.pdf` regenerates it headlessly."
)
