"""Every exported figure is clean on paper (issue 11): in both widths and for 8, 14 and 20 tasks, every label and
legend entry lies inside the canvas, no text overlaps another, every font is ≥ 6 pt at print size, and one font
family is used. Measured on the exported SVG in Debian's chromium (tests/figures/svg_geometry.py)."""
from __future__ import annotations

import pytest
from figure_helpers import needs_chromium

from spectral.figures import registry
from spectral.figures.export import export_figure
from spectral.figures.template import FONT_FAMILY

pytest.importorskip("playwright")
from gallery import figures, workspace  # noqa: E402
from svg_geometry import MIN_FONT_PT, Measurer, font_families  # noqa: E402

pytestmark = [needs_chromium]
#: kinds whose data needs every model evaluated on every task: drawn at 20 tasks only (the densest legends and
#: labels; 8 and 14 tasks are checked by the static kinds and the gallery), to keep the suite short
EVALUATES = [k for k, kind in registry.FIGURES.items() if kind.evaluates]
STATIC = [k for k in registry.FIGURES if k not in EVALUATES]


@pytest.fixture(scope="module")
def measurer():
    with Measurer() as m:
        yield m


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("geometry-cache"))
    opened = {}

    def get(num_tasks: int):
        if num_tasks not in opened:
            opened[num_tasks] = workspace(num_tasks, cache)
        return opened[num_tasks]

    return get


def _check(measurer: Measurer, fig, label: str) -> None:
    problems = []
    for columns in ("one", "two"):
        svg = export_figure(fig, "svg", columns=columns)
        geometry = measurer.measure(svg)
        assert geometry.texts, f"{label}: no text measured"
        for t in geometry.outside():
            problems.append(f"{columns}: {t.text!r} outside the {geometry.width}×{geometry.height} canvas "
                            f"({t.x0:.0f},{t.y0:.0f})–({t.x1:.0f},{t.y1:.0f})")
        for t in geometry.small():
            problems.append(f"{columns}: {t.text!r} at {t.pt:.2f} pt < {MIN_FONT_PT} pt")
        for a, b in geometry.overlaps():
            problems.append(f"{columns}: {a.text!r} overlaps {b.text!r}")
        families = font_families(svg.decode())
        if families != {FONT_FAMILY}:
            problems.append(f"{columns}: font families {sorted(families)}, want only {FONT_FAMILY}")
    assert not problems, f"{label}:\n" + "\n".join(problems[:20])


def test_the_checker_sees_a_label_outside_the_canvas_and_small_fonts(measurer) -> None:
    """The geometry test can fail: a legend pushed below the page and a 5-px font are reported."""
    import plotly.graph_objects as go

    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">'
           '<text x="10" y="20" style="font-size:12px">inside</text>'
           '<text x="12" y="22" style="font-size:12px">over</text>'
           '<text x="10" y="70" style="font-size:12px">below</text>'
           '<text x="60" y="40" style="font-size:5px">tiny</text></svg>')
    g = measurer.measure(svg)
    assert [t.text for t in g.outside()] == ["below"]
    assert [t.text for t in g.small()] == ["tiny"]
    assert [(a.text, b.text) for a, b in g.overlaps()] == [("inside", "over")]
    assert go  # plotly import kept for symmetry with the figures


@pytest.mark.slow
@pytest.mark.parametrize("num_tasks", [8, 14, 20])
@pytest.mark.parametrize("kind", STATIC)
def test_static_figures_are_clean_on_paper(kind: str, num_tasks: int, pools, measurer) -> None:
    fig, _, _ = figures(pools(num_tasks), [kind])[kind]
    _check(measurer, fig, f"{kind}, {num_tasks} tasks")


@pytest.mark.slow
@pytest.mark.parametrize("num_tasks", [20])
@pytest.mark.parametrize("kind", EVALUATES)
def test_evaluated_figures_are_clean_on_paper(kind: str, num_tasks: int, pools, measurer) -> None:
    fig, _, _ = figures(pools(num_tasks), [kind])[kind]
    _check(measurer, fig, f"{kind}, {num_tasks} tasks")


@pytest.mark.slow
def test_adaptation_figures_are_clean_on_paper(tmp_path, measurer) -> None:
    """The adaptation page's figures (AdaRank masks, kept rank, λ, traces) in both widths."""
    import sys
    from pathlib import Path

    adapt_tests = str(Path(__file__).resolve().parent.parent / "adapt")
    if adapt_tests not in sys.path:
        sys.path.append(adapt_tests)
    from synthetic import SyntheticPool, make_engine

    from spectral.adapt import AdaptConfig, run_adaptation
    from spectral.adapt.tables import kept_rank_table, lambda_table
    from spectral.analysis import layer_label
    from spectral.figures import adapt as fig

    pool = SyntheticPool(3)
    cfg = AdaptConfig(base="cart", steps=3, lr=0.5, select_every=1, eval_every=1, selection="min_entropy")
    result = run_adaptation(make_engine(pool, tmp_path), pool, cfg, cache_dir=tmp_path)
    table = kept_rank_table(result)
    figures_ = {
        "masks": fig.mask_figure(result.masks, result.task_names, layers=list(result.masks)[:4],
                                 labels={k: layer_label(k) for k in result.masks}),  # as the page draws it
        "kept_rank": fig.kept_rank_figure(table),
        "kept_rank_lines": fig.kept_rank_lines_figure(table, kind="in_proj"),
        "lambda": fig.lambda_figure(lambda_table(result)),
        "entropy": fig.entropy_trace_figure(result.traces, selected_step=result.selected_step),
        "accuracy_trace": fig.accuracy_trace_figure(result.traces),
    }
    for name, f in figures_.items():
        _check(measurer, f, f"adaptation {name}")
