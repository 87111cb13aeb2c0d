"""A real dashboard server on the fake pool, and Debian's chromium driven by Playwright (docs/contributing.md, Testing).

Skips cleanly when chromium or Playwright is missing (CI installs both through scripts/setup.sh)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on a free port with the fake pool as default; yields its base URL."""
    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {
        **os.environ,
        "SPECTRAL_POOL_FACTORIES": "fake-4=fake_pool:make_pool",
        "SPECTRAL_DEFAULT_POOL": "fake-4",
        "SPECTRAL_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "app"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "BROWSER_PATH": CHROMIUM,
        # the pools the tests write (pytest's temporary folders) are inside the dashboard's pool roots
        "SPECTRAL_POOL_ROOTS": os.pathsep.join([str(ROOT), str(tmp_path_factory.getbasetemp())]),
    }
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
           "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        (ARTIFACTS / "streamlit.log").parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "streamlit.log")


@pytest.fixture(scope="module")
def chrome(server: str) -> Iterator[object]:
    # per module, not per session: Playwright's sync API holds an event loop on this thread while it runs, and
    # later tests (tests/figures' SVG measurer) start their own
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class OutsideRequests(list):
    """URLs the page asked for on a host other than the app's (each was blocked)."""


@pytest.fixture
def outside_requests() -> OutsideRequests:
    return OutsideRequests()


@pytest.fixture
def tab(chrome: object, server: str, outside_requests: OutsideRequests, tmp_path: Path) -> Iterator[object]:
    """A fresh browser tab. Every request to a host other than the app's is blocked and recorded, and the test
    fails if there was any: the product runs offline, so nothing may leave the machine (fonts, icons, CDNs)."""
    context = chrome.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    app_host = urlsplit(server).netloc

    def only_the_app(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != app_host:
            outside_requests.append(url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    context.route("**/*", only_the_app)
    page = context.new_page()
    page.on("websocket", lambda ws: None if urlsplit(ws.url).netloc == app_host else outside_requests.append(ws.url))
    page.set_default_timeout(90_000)
    try:
        yield page
    finally:
        context.close()
    assert not outside_requests, f"requests to hosts other than the app ({app_host}): {sorted(set(outside_requests))}"
