"""spectral dashboard: ``streamlit run app.py``.

``st.navigation`` over the files in pages/ (listing them here turns off Streamlit's legacy pages/
auto-discovery). The pages are thin: they read widgets, call :mod:`spectral` and show figures with their
downloads. Each starts with ``_ui.workspace()``, which draws the shared sidebar (model pool, device, export width,
SVD-cache status) and opens the chosen pool.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `pages._ui` and `spectral` import from the project root
    sys.path.insert(0, str(ROOT))

from spectral.app_state import configure_torch_threads  # noqa: E402

configure_torch_threads()  # few threads: many small operations from several sessions (see its docstring)
st.set_page_config(page_title="spectral — SVD model merging", page_icon="📈", layout="wide")

# url paths equal the file names: a deep link served by Streamlit's legacy pages/ discovery on a fresh server
# (before the first st.navigation call) then names the same page (see _ui.leave_legacy_navigation).
PAGES = [
    st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/task_vectors.py", title="Task vectors", icon=":material/explore:", url_path="task_vectors"),
    st.Page("pages/spectra.py", title="Spectra", icon=":material/ssid_chart:", url_path="spectra"),
    st.Page("pages/interference.py", title="Interference", icon=":material/extension:", url_path="interference"),
    st.Page("pages/alignment.py", title="Alignment", icon=":material/target:", url_path="alignment"),
    st.Page("pages/merge_lab.py", title="Merge lab", icon=":material/science:", url_path="merge_lab"),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/show_chart:", url_path="sweeps"),
]
if (ROOT / "pages" / "adaptation.py").exists():  # test-time adaptation (AdaRank), when that part is installed
    PAGES.append(st.Page("pages/adaptation.py", title="Adaptation", icon=":material/tune:", url_path="adaptation"))
PAGES.append(st.Page("pages/export.py", title="Export", icon=":material/ios_share:", url_path="export"))

st.navigation(PAGES).run()  # each page draws the shared sidebar through _ui.workspace()
