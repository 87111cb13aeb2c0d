"""Invalid URL values show a warning naming the parameter and the value, then fall back (issue 11 item 5)."""
from __future__ import annotations

from app_helpers import APP
from streamlit.testing.v1 import AppTest

from pages._ui import url_value_matches

TIMEOUT = 120


def _warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_invalid_url_values_warn_and_fall_back() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {
        "ml_tsv_m_k_frac": "7.5",  # out of the slider's range
        "ml_task_arithmetic_alpha": "banana",  # not a number
        "ml_iso_cts_common_frac": "0.6",  # valid: used, no warning
        "ml_tsv_m_alpha": "1.0",  # valid and the default: Streamlit drops it from the URL, no warning
    }
    at.run()
    at.switch_page("pages/merge_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = _warnings(at)
    k_frac = [w for w in warnings if "ml_tsv_m_k_frac=7.5" in w]
    alpha = [w for w in warnings if "ml_task_arithmetic_alpha=banana" in w]
    assert len(k_frac) == 1 and len(alpha) == 1, warnings
    # ... and name the value used instead: the declared defaults
    assert f"{at.select_slider(key='ml_tsv_m_k_frac').value!r}" in k_frac[0]
    assert at.slider(key="ml_task_arithmetic_alpha").value == 0.3 and "0.3" in alpha[0]
    assert at.select_slider(key="ml_iso_cts_common_frac").value == 0.6
    assert not any("ml_iso_cts_common_frac" in w or "ml_tsv_m_alpha" in w for w in warnings)


def test_an_unknown_pool_in_the_url_warns_and_falls_back() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {"pool": "no-such-pool"}
    at.run()
    assert not at.exception
    assert any("pool=no-such-pool" in w for w in _warnings(at))
    assert at.sidebar.selectbox(key="pool").value == "fake-4"


def test_url_value_matches() -> None:
    assert url_value_matches(["0.30"], 0.3) and not url_value_matches(["7.5"], 0.25)
    assert not url_value_matches(["banana"], 0.3)
    assert url_value_matches(["true"], True) and not url_value_matches(["1"], False)
    assert url_value_matches(["0.1", "2.5"], (0.1, 2.5)) and not url_value_matches(["0.1"], (0.1, 2.5))
    assert url_value_matches(["Procrustes"], "procrustes") and not url_value_matches(["svd"], "procrustes")


def test_adaptation_settings_from_the_url_warn_too() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params = {"ad_method": "adasomething", "ad_steps": "12"}
    at.run()
    at.switch_page("pages/adaptation.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = _warnings(at)
    assert any("ad_method=adasomething" in w for w in warnings), warnings
    assert at.number_input(key="ad_steps").value == 12 and not any("ad_steps" in w for w in warnings)
