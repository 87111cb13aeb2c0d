"""The documentation site builds offline with ``mkdocs build --strict`` (issue 27), and a broken link fails it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


def copy_of_docs(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ (screenshots linked, not copied) in a folder of their own; the API reference reads the
    project's package through PYTHONPATH."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs", ignore=shutil.ignore_patterns("screenshots"))
    (project / "docs" / "screenshots").symlink_to(ROOT / "docs" / "screenshots", target_is_directory=True)
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    (project / "spectral").symlink_to(ROOT / "spectral", target_is_directory=True)
    return project


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("site")
    return build(ROOT, out), out


def test_the_site_builds_strictly(site) -> None:
    result, out = site
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.name for p in out.glob("*.html")}
    for page in ("index.html", "checkpoints.html", "data.html", "methods.html", "dashboard.html", "cli.html",
                 "language-models.html", "lora-llms.html", "plugins.html", "scaling.html", "serving.html",
                 "benchmarks.html", "contributing.html", "api.html"):
        assert page in pages, page
    api = (out / "api.html").read_text()
    assert "merge_layer" in api and "task_matrices" in api  # the docstrings are rendered, not just the headings


def test_the_site_fetches_nothing_at_build_or_view_time(site) -> None:
    """Offline: no Google Fonts (theme.font is false), no CDN scripts or styles in the pages."""
    _, out = site
    for page in out.glob("*.html"):
        html = page.read_text()
        external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
        assets = [u for u in external if re.search(r"\.(js|css|woff2?|ttf)(\?|$)|fonts\.googleapis|fonts\.gstatic", u)]
        assert assets == [], (page.name, assets)


def test_every_dashboard_page_has_its_screenshot() -> None:
    text = (ROOT / "docs" / "dashboard.md").read_text()
    app = (ROOT / "app.py").read_text()
    url_paths = re.findall(r'url_path="(\w+)"', app)
    shots = set(re.findall(r"\(screenshots/([\w-]+)\.png\)", text))
    assert "overview" in shots and set(url_paths) <= shots, set(url_paths) - shots
    for name in shots:
        assert (ROOT / "docs" / "screenshots" / f"{name}.png").is_file(), name


@pytest.mark.parametrize("breakage", [
    ("methods.md", "[Contributing](contributing.md#math-conventions)", "[Contributing](contributing.md#no-such-part)"),
    ("index.md", "[Methods](methods.md)", "[Methods](no-such-page.md)"),
    ("dashboard.md", "(screenshots/spectra.png)", "(screenshots/no-such-screenshot.png)"),
], ids=["anchor", "page", "image"])
def test_a_broken_link_fails_the_build(tmp_path: Path, breakage: tuple[str, str, str]) -> None:
    page, good, bad = breakage
    project = copy_of_docs(tmp_path)
    text = (project / "docs" / page).read_text()
    assert good in text, f"the test's link vanished from {page}: {good}"
    (project / "docs" / page).write_text(text.replace(good, bad, 1))
    result = build(project, tmp_path / "site")
    assert result.returncode != 0
    assert bad.split("(")[1].split(")")[0].split("#")[-1] in result.stdout + result.stderr
