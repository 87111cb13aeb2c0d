"""Imports run one way (issue 11 item 6): the library never imports the dashboard, the math layers never import
the layers built on them, and analysis and eval stay independent of each other. Checked statically, including
imports inside functions (a deferred import is still a dependency)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spectral"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _offenders(sources: str | tuple[str, ...], targets: tuple[str, ...]) -> dict[str, list[str]]:
    sources = (sources,) if isinstance(sources, str) else sources

    def under(name: str, prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    return {m: sorted(i for i in imps if under(i, targets))
            for m, imps in MODULES.items() if under(m, sources) and any(under(i, targets) for i in imps)}


def test_the_scan_sees_imports() -> None:
    """The checks below can fail: the scan finds known edges, including deferred ones."""
    assert "spectral.engine" in MODULES["spectral.analysis"]
    assert "spectral.methods" in MODULES["spectral.analysis"]  # imported inside a function
    assert "spectral.engine" in _offenders("spectral.analysis", ("spectral.engine",))["spectral.analysis"]


def test_the_library_never_imports_the_dashboard() -> None:
    assert _offenders("spectral", ("streamlit", "pages", "app")) == {}


@pytest.mark.parametrize("source, targets", [
    ("spectral.analysis", ("spectral.eval",)),
    ("spectral.eval", ("spectral.analysis", "spectral.figures", "spectral.app_state")),
    (("spectral.linalg", "spectral.methods", "spectral.metrics"),
     ("spectral.engine", "spectral.eval", "spectral.analysis", "spectral.figures", "spectral.app_state",
      "spectral.cli", "spectral.adapt", "spectral.zoo")),
    ("spectral.checkpoints", ("spectral.analysis", "spectral.figures", "spectral.app_state", "spectral.engine")),
])
def test_imports_run_one_way(source, targets) -> None:
    assert _offenders(source, targets) == {}
