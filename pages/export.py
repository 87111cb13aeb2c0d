"""Export: how figure downloads work, and regeneration of a figure from its settings YAML (the same code path as
``python -m spectral figure``), with every download of the regenerated figure."""
from __future__ import annotations

import streamlit as st

from pages import _ui
from spectral.figures import registry
from spectral.figures.export import find_chromium, load_settings

st.title("Export")
st.markdown(
    "Every figure in the dashboard has a row of downloads under it: **PDF**, **SVG** and **PNG** in a paper template "
    "(simple white, serif font, one- or two-column width — choose in the sidebar), the **CSV** of the data it shows, "
    "and a **YAML** of the settings that made it. From that YAML the same figure is regenerated headlessly:\n\n"
    "```bash\npython -m spectral figure spectra-zoo-8.yaml -o spectra.pdf        # or .svg / .png / .csv\n"
    "python -m spectral figure spectra-zoo-8.yaml -o fig.pdf --columns two   # full text width\n```"
)
if find_chromium() is None:
    st.warning("No Chromium found: PDF / SVG / PNG export needs Debian's `chromium` (apt-get install -y chromium).")

ws = _ui.workspace()
st.subheader("Regenerate a figure from its settings")
upload = st.file_uploader("Settings YAML", type=["yaml", "yml"], key="ex_upload")
if upload is not None:
    with _ui.guard("Settings"):
        document = load_settings(upload.getvalue().decode("utf-8", errors="replace"))
        kind = str(document["figure"])
        settings = registry.resolve_settings(kind, document.get("settings") or {})
        pool = str(document.get("pool") or "")
        if pool and pool != ws.spec:
            st.warning(f"These settings were made on pool **{pool}**; regenerating on the pool chosen in the sidebar, "
                       f"**{ws.spec}**. Choose {pool} there to reproduce the original.")
        st.caption(f"{registry.get_kind(kind).title} · {registry.get_kind(kind).source}")
        _ui.show_figure(ws, kind, settings, key="ex_regenerated")

st.subheader("Figures")
st.dataframe([{"figure": k.name, "title": k.title, "source": k.source, "default width": k.columns,
               "evaluates models": k.evaluates} for k in registry.FIGURES.values()], hide_index=True, width="stretch")
