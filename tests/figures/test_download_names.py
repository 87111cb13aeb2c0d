"""Download names carry the figure's state (issue 29): method parameters that differ from their declared defaults,
the STI rank, and a hash only where the name would pass 80 characters."""
from __future__ import annotations

from spectral.figures import registry
from spectral.figures.export import MAX_STEM

DEFAULTS = {"task_arithmetic": {"alpha": 0.3},
            "tsv_m": {"alpha": 1.0, "k_frac": 0.125, "orthogonalisation": "procrustes"},
            "iso_cts": {"alpha": 1.5, "common_frac": 0.8}}


def radar(params: dict, **extra) -> str:
    return registry.download_stem("radar", "zoo-8", {"params": params, **extra}, num_tasks=8)


def test_radar_at_defaults_has_no_hash() -> None:
    assert radar(DEFAULTS) == "radar-zoo-8"  # the radar-zoo-8-ea318f6a: every value was a default


def test_changed_parameters_are_named() -> None:
    changed = {**DEFAULTS, "tsv_m": {**DEFAULTS["tsv_m"], "k_frac": 0.2},
               "iso_cts": {**DEFAULTS["iso_cts"], "common_frac": 0.6}}
    assert radar(changed) == "radar-zoo-8-tsvm.k=0.2-isocts.cf=0.6"
    assert radar(changed, subsample=256) == "radar-zoo-8-tsvm.k=0.2-isocts.cf=0.6-subsample=256"


def test_task_count_defaults_count_as_defaults() -> None:
    # k_frac defaults to 1/T; the slider rounds 1/3 to its 0.005 step (0.335): still the default
    three = {"tsv_m": {"k_frac": 0.335}}
    assert registry.download_stem("radar", "zoo-3", {"params": three}, num_tasks=3) == "radar-zoo-3"
    assert registry.download_stem("radar", "zoo-3", {"params": {"tsv_m": {"k_frac": 0.125}}}, num_tasks=3) \
        == "radar-zoo-3-tsvm.k=0.125"


def test_sti_names_carry_the_rank() -> None:
    assert registry.download_stem("sti_layers", "zoo-8", {}) == "sti_layers-zoo-8-k=r_T"
    assert registry.download_stem("sti_layers", "zoo-8", {"k_frac": 0.5}) == "sti_layers-zoo-8-k_frac=0.5"
    assert registry.download_stem("sti_layers", "zoo-8", {"log_z": True}) == "sti_layers-zoo-8-k=r_T-log_z=on"


def test_hash_only_past_the_limit() -> None:
    many = {**DEFAULTS, "tsv_m": {**DEFAULTS["tsv_m"], "k_frac": 0.2}, "iso_cts": {"alpha": 1.1, "common_frac": 0.6},
            "cart": {"alpha": 0.7, "k_frac": 0.16}, "ties": {"alpha": 0.9, "density": 0.3}}
    methods = ["task_arithmetic", "tsv_m", "iso_cts", "cart", "ties"]
    full = "radar-zoo-8-methods=ta+tsvm+isocts+cart+ties-tsvm.k=0.2-isocts.a=1.1-isocts.cf=0.6-cart.a=0.7"
    stem = radar(many, methods=methods)
    assert len(full) > MAX_STEM and len(stem) <= MAX_STEM
    assert stem.startswith("radar-zoo-8-methods=ta+tsvm+isocts+cart+ties-tsvm.k=0.2")
    assert stem != radar({**many, "ties": {"alpha": 0.8, "density": 0.3}}, methods=methods)  # the hash tells apart
    short = radar({**DEFAULTS, "tsv_m": {**DEFAULTS["tsv_m"], "k_frac": 0.2}}, methods=methods)
    assert len(short) <= MAX_STEM and short == "radar-zoo-8-methods=ta+tsvm+isocts+cart+ties-tsvm.k=0.2"


def test_adapted_models_are_named_by_a_short_run_id() -> None:
    stem = radar(DEFAULTS, adapted=["0123456789abcdef0123@40", "fedcba9876543210fedc@12"])
    assert stem == "radar-zoo-8-adapted=012345_40+fedcba_12"
