"""spectral dashboard: `streamlit run app.py`.

The page layout (st.navigation over pages/) is fixed here; the pages themselves land with the dashboard issue.
"""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="spectral — SVD model merging", page_icon="📐", layout="wide")

PAGES = [st.Page("pages/home.py", title="Overview", icon="🏠", default=True)]

st.navigation(PAGES).run()
