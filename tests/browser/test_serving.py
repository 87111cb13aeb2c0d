"""The README's command, exactly (issue 26): ``streamlit run app.py`` from the project root, with no flag but a free
port. The project's .streamlit/config.toml must make it listen on 127.0.0.1 only, send no usage statistics, and
show no Deploy button; a browser session on it requests nothing from another host."""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # as in this folder's conftest (`import conftest` is ambiguous)
CHROMIUM = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_command(port: int) -> list[str]:
    """``streamlit run app.py`` (the console script of this environment) and the port, nothing else."""
    script = Path(sys.executable).with_name("streamlit")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "streamlit"]
    return [*launcher, "run", "app.py", f"--server.port={port}"]


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    port = _free_port()
    log = tmp_path_factory.mktemp("readme-server") / "streamlit.log"
    env = {  # the fake pool through the environment (not flags): the command line stays the README's
        **os.environ,
        "SPECTRAL_POOL_FACTORIES": "fake-4=fake_pool:make_pool",
        "SPECTRAL_DEFAULT_POOL": "fake-4",
        "SPECTRAL_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "app"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for name in list(env):  # no configuration through STREAMLIT_* variables either
        if name.startswith("STREAMLIT_"):
            del env[name]
    with open(log, "wb") as out:
        proc = subprocess.Popen(readme_command(port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
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
        yield url, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "streamlit-readme.log")


@pytest.fixture(scope="module")
def server(readme_server: tuple[str, subprocess.Popen, Path]) -> str:
    """The conftest's browser fixtures (``chrome``, ``tab``: outside requests fail the test) on this server."""
    if CHROMIUM is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
    return readme_server[0]


IDLE_JS = """(n) => !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && document.querySelectorAll('.js-plotly-plot').length >= n"""


def settle(page, charts: int = 0) -> None:  # noqa: ANN001 - as in test_browser.py
    page.wait_for_selector("h1")
    calm = 0
    while calm < 3:
        page.wait_for_function(IDLE_JS, arg=charts)
        page.wait_for_timeout(250)
        calm = calm + 1 if page.evaluate(IDLE_JS, charts) else 0


def no_exception(page) -> None:  # noqa: ANN001
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def test_the_readme_command_listens_on_loopback_only(readme_server) -> None:
    psutil = pytest.importorskip("psutil")
    url, proc, log = readme_server
    port = int(url.rsplit(":", 1)[1])
    listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening, "the server holds no listening socket"
    assert all(addr.port == port for addr in listening)
    assert all(ipaddress.ip_address(addr.ip).is_loopback for addr in listening), listening
    text = log.read_text()
    assert "Network URL" not in text and "External URL" not in text
    assert "Collecting usage statistics" not in text  # browser.gatherUsageStats = false


def test_a_browser_session_requests_nothing_from_another_host(server: str, tab, artifacts: Path) -> None:
    """The overview and the merge lab in chromium; the ``tab`` fixture fails the test on any request to a host
    other than the app's (a usage-statistics call to data.streamlit.io would be one)."""
    tab.goto(server)
    settle(tab)
    no_exception(tab)
    assert tab.locator('[data-testid="stAppDeployButton"]').count() == 0  # toolbarMode = "viewer"
    assert tab.get_by_text("Deploy", exact=True).count() == 0
    assert tab.locator('[data-testid="stSidebar"]').get_by_text("Served beyond this machine").count() == 0
    tab.goto(f"{server}/merge_lab")
    settle(tab, 1)
    no_exception(tab)
    tab.screenshot(path=str(artifacts / "readme-command-merge-lab.png"), full_page=True)
