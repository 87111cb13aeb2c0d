"""Regenerate the documentation's screenshots: start the dashboard on a pool (default the demo zoo, zoo-8), open
its pages in Debian's chromium through Playwright and save them to docs/screenshots/.

    python scripts/screenshots.py                                     # every page of the dashboard
    python scripts/screenshots.py [--pool zoo-8] [--pages spectra merge_lab]
    python scripts/screenshots.py --pool lm-zoo-7 --suffix=-lm --pages spectra merge_lab   # spectra-lm.png, ...

Needs ``apt-get install -y chromium`` and ``pip install playwright`` (no browser download). The demo zoo is built
first if it is missing (minutes on CPU, once).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
import shutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
IDLE_JS = """(n) => !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && document.querySelectorAll('.js-plotly-plot').length >= n"""
#: page name → (url path, file name, charts to wait for, query string for a CLIP pool)
PAGES = {
    "overview": ("", "overview", 0, ""),
    "task_vectors": ("task_vectors", "task_vectors", 2, ""),
    "spectra": ("spectra", "spectra", 4, "?sp_layer=0·out_proj"),
    "interference": ("interference", "interference", 4, ""),
    "alignment": ("alignment", "alignment", 2, ""),
    "merge_lab": ("merge_lab", "merge_lab", 1, ""),
    "sweeps": ("sweeps", "sweeps", 1, "?sw_rank_points=5&sw_alpha_points=5&sw_common_points=5&sw_ablation_select=false"),
    "adaptation": ("adaptation", "adaptation", 0, ""),
    "export": ("export", "export", 0, ""),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settle(page, charts: int) -> None:
    page.wait_for_selector("h1")
    calm = 0
    while calm < 4:
        page.wait_for_function(IDLE_JS, arg=charts, timeout=900_000)
        page.wait_for_timeout(300)
        calm = calm + 1 if page.evaluate(IDLE_JS, charts) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="zoo-8")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--suffix", default="", help="appended to the file names (e.g. -lm)")
    args = parser.parse_args(argv)
    chromium = os.environ.get("BROWSER_PATH") or shutil.which("chromium")
    if chromium is None:
        print("error: needs Debian's chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "SPECTRAL_DEFAULT_POOL": args.pool}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
         "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none", "--theme.base=light"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=1)
            page.set_default_timeout(900_000)
            for name in args.pages:
                path, stem, charts, query = PAGES[name]
                page.goto(f"{url}/{path}{'' if args.suffix else query}")  # the query names a CLIP layer
                settle(page, charts)
                target = OUT / f"{stem}{args.suffix}.png"
                page.screenshot(path=str(target), full_page=False)
                print(f"wrote {target.relative_to(ROOT)}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
