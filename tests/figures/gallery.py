"""Every registered figure drawn on a fake pool of 8, 14 or 20 tasks (the papers' task names), for the exported-
figure geometry test and the before/after table of the figures' note.

    python tests/figures/gallery.py --tasks 8 14 20 --out /tmp/figs    # SVG + PDF of each, and the table
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for extra in (HERE.parent / "app", HERE):
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

import fake_pool  # noqa: E402

from spectral.app_state import Workspace  # noqa: E402
from spectral.figures import registry  # noqa: E402

#: the 20-task suite of the papers, in their order (8 and 14 tasks are its prefixes)
TASKS_20 = ("SUN397", "Cars", "RESISC45", "EuroSAT", "SVHN", "GTSRB", "MNIST", "DTD", "CIFAR100", "STL10",
            "Flowers102", "OxfordIIITPet", "PCAM", "FER2013", "EMNIST", "CIFAR10", "Food101", "FashionMNIST",
            "RenderedSST2", "KMNIST")
#: settings that keep the gallery quick on the fake pool (fewer sweep points; every figure kind still drawn)
QUICK: dict[str, dict[str, Any]] = {
    "rank_sweep": {"fractions": [0.05, 0.2, 1.0]},
    "alpha_sweep": {"alphas": [0.3, 1.0, 2.0]},
    "common_frac_sweep": {"fractions": [0.0, 0.5, 1.0]},
    "ablation": {"select_alpha": False},
    "radar": {"methods": ["weight_average", "task_arithmetic", "ties", "tsv_m", "iso_c", "iso_cts", "cart"]},
    "sti_layers": {"log_z": True},
}


def workspace(num_tasks: int, cache_dir: str) -> Workspace:
    tasks = TASKS_20[:num_tasks]
    pool = fake_pool.FakePool(name=f"fake-{num_tasks}", tasks=tasks, samples=24)
    return Workspace(f"fake-{num_tasks}", device="cpu", cache_dir=cache_dir, pool=pool).open()


def figures(ws: Workspace, kinds: list[str] | None = None) -> dict[str, tuple[Any, dict[str, Any], Any]]:
    """name → (figure, settings, data) of every registered figure kind (or ``kinds``)."""
    out = {}
    for name in kinds or list(registry.FIGURES):
        settings = registry.resolve_settings(name, QUICK.get(name, {}))
        data = registry.compute_cached(name, ws, settings)
        out[name] = (registry.build(name, data, settings), settings, data)
    return out


def main() -> None:
    import tempfile

    from spectral.figures.export import export_figure, stop_server
    from svg_geometry import Measurer, font_families

    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, nargs="+", default=[8, 14, 20])
    ap.add_argument("--out", default="/tmp/figs")
    ap.add_argument("--kinds", nargs="*", default=None)
    ap.add_argument("--pdf", action="store_true", help="also write PDFs")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'figure':18s} {'T':>3s} {'cols':4s} {'min pt':>6s} {'inside':>6s} {'outside':>7s} {'overlap':>7s} fonts")
    with tempfile.TemporaryDirectory() as cache, Measurer() as measurer:
        for t in args.tasks:
            ws = workspace(t, cache)
            for name, (fig, _, _) in figures(ws, args.kinds).items():
                for cols in ("one", "two"):
                    svg = export_figure(fig, "svg", columns=cols)
                    stem = f"{name}-{t}-{cols}"
                    (out / f"{stem}.svg").write_bytes(svg)
                    if args.pdf:
                        (out / f"{stem}.pdf").write_bytes(export_figure(fig, "pdf", columns=cols))
                    g = measurer.measure(svg)
                    outside = g.outside()
                    print(f"{name:18s} {t:3d} {cols:4s} {g.smallest_pt():6.2f} {len(g.texts) - len(outside):6d} "
                          f"{len(outside):7d} {len(g.overlaps()):7d} {','.join(sorted(font_families(svg.decode())))}",
                          flush=True)
    stop_server()


if __name__ == "__main__":
    main()
