"""``python -m spectral figure …``: regenerate a dashboard figure headlessly from the settings YAML its page
exported (the YAML download under every figure), as PDF / SVG / PNG in the paper template, CSV or YAML.

    python -m spectral figure spectra-zoo-8.yaml -o spectra.pdf
    python -m spectral figure spectra-zoo-8.yaml -o spectra.svg -o spectra.csv --columns two
    python -m spectral figure spectra-zoo-8.yaml -o beta.pdf --set beta=0.9 --pool zoo-14
    python -m spectral figure --list
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".pdf", ".svg", ".png", ".csv", ".yaml", ".yml", ".json")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("figure", help="regenerate a dashboard figure from its settings YAML",
                              description=__doc__.splitlines()[0])
    p.add_argument("settings", nargs="?", help="settings YAML downloaded from the dashboard")
    p.add_argument("-o", "--output", action="append", default=[], metavar="FILE",
                   help="output file; its suffix picks the format (.pdf .svg .png .csv .yaml .json); repeatable")
    p.add_argument("--columns", choices=["one", "two"], default=None,
                   help="paper width (default: the YAML's export.columns)")
    p.add_argument("--height-in", type=float, default=None, help="figure height in inches")
    p.add_argument("--pool", default=None, help="regenerate on another pool than the YAML's")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one setting (value parsed as JSON when possible), e.g. --set beta=0.8")
    p.add_argument("--list", action="store_true", help="list the figures and their default settings")
    p.set_defaults(func=cmd_figure)


def cmd_figure(args: argparse.Namespace) -> int:
    from spectral.app_state import get_workspace
    from spectral.cli import parse_params
    from spectral.progress import tqdm_progress
    from spectral.errors import SpectralError
    from spectral.figures import registry
    from spectral.figures.export import csv_bytes, export_figure, load_settings, settings_yaml, stop_server

    if args.list:
        for kind in registry.FIGURES.values():
            print(f"{kind.name:18s} {kind.title} ({kind.source})")
            print(f"{'':18s} settings: {dict(kind.defaults)}")
        return 0
    if not args.settings:
        raise SpectralError("give the settings YAML of a figure (or --list)")
    if not args.output:
        raise SpectralError("give at least one output file with -o (e.g. -o figure.pdf)")
    for out in args.output:
        if Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
            raise SpectralError(f"{out}: unknown output format; use one of {', '.join(OUTPUT_SUFFIXES)}")
    document = load_settings(Path(args.settings))
    document = dict(document)
    document["settings"] = {**(document.get("settings") or {}), **parse_params(args.set)}
    if args.pool:
        document["pool"] = args.pool
    if args.device:
        document["device"] = args.device
    export = dict(document.get("export") or {})
    columns = args.columns or export.get("columns") or registry.get_kind(str(document["figure"])).columns
    height_in = args.height_in if args.height_in is not None else export.get("height_in")
    with tqdm_progress(f"figure {document['figure']}") as progress:
        fig, data, settings = registry.regenerate(
            document, open_source=lambda pool, device: get_workspace(pool, device=device), progress=progress)
    try:
        for out in args.output:
            path = Path(out)
            suffix = path.suffix.lower()
            if suffix in (".pdf", ".svg", ".png"):
                payload = export_figure(fig, suffix[1:], columns=columns, height_in=height_in)
            elif suffix == ".csv":
                payload = csv_bytes(data.table)
            elif suffix == ".json":
                payload = fig.to_json().encode()
            else:
                payload = settings_yaml(registry.settings_document(
                    str(document["figure"]), str(document["pool"]), settings, columns=columns, height_in=height_in,
                    meta=data.meta))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(payload)
            tmp.replace(path)
            print(f"wrote {path} ({len(payload)} bytes)")
    finally:
        stop_server()
    return 0
