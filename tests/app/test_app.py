from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_app_starts_and_lists_methods():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "spectral"
    table = at.dataframe[0].value
    assert "tsv_m" in set(table["name"]) and "iso_cts" in set(table["name"])
