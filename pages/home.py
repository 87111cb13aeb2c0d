"""Overview page: what the library can do today (a placeholder until the dashboard pages land)."""
from __future__ import annotations

import streamlit as st

import spectral

st.title("spectral")
st.write("SVD-based model merging: TSV, Iso-C / Iso-CTS, CART, TIES, Consensus and baselines.")
rows = []
for name in spectral.list_methods(kind=None):
    method = spectral.get_method(name)
    rows.append({"method": method.display_name, "name": name, "paper": method.paper,
                 "parameters": ", ".join(f"{p.name}={p.default}" for p in method.params)})
st.dataframe(rows, hide_index=True, use_container_width=True)
