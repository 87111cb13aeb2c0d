"""Collect and run the fenced examples of README.md and docs/**/*.md (issue 27).

Every fenced block whose language is ``python``/``py`` or ``bash``/``sh``/``shell``/``console`` runs, unless its
info string contains the word ``notest`` (```` ```bash notest ````: needs real checkpoints, a GPU or a long run).
A block whose info string carries ``title="name"`` (MkDocs Material's file-name caption) is not run: it is written
to that file, for the blocks after it to use. The blocks of one page run in order in one folder and share state:
Python blocks one namespace (in this process), shell blocks run with ``bash -e`` in that folder.

The folder holds symbolic links to the project's top-level files and folders (``spectral``, ``app.py``,
``scripts``, …; not ``cache``), so ``python -m spectral`` and ``PYTHONPATH=.`` work there, and ``micro/``, the micro
zoo (a base ``micro/base.safetensors``, task checkpoints ``micro/tasks/<task>.safetensors``, heads and data).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON_LANGS = {"python", "py", "python3"}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_TITLE = re.compile(r"""title=(?:"([^"]+)"|'([^']+)'|(\S+))""")
SHELL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: Path  # the page
    line: int  # 1-based line of the opening fence
    lang: str  # "python" or "shell"
    info: str
    code: str

    @property
    def title(self) -> str | None:
        match = _TITLE.search(self.info)
        return next(g for g in match.groups() if g) if match else None

    @property
    def skipped(self) -> bool:
        return "notest" in re.split(r"[\s{}.,=\"']+", self.info)

    def where(self, root: Path) -> str:
        try:
            name = self.path.resolve().relative_to(root.resolve())
        except ValueError:
            name = self.path
        return f"{name}:{self.line}"


def parse_blocks(text: str, path: Path) -> list[Block]:
    """Every fenced python or shell block of ``text`` (indented ones, as inside admonitions, dedented)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent, info = opening["fence"], len(opening["indent"]), opening["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = re.match(r"^[ \t]*(`{3,}|~{3,})[ \t]*$", lines[j])
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
            j += 1
        words = re.split(r"[\s{}.,]+", info)
        lang = words[0].lower() if words and words[0] else (words[1].lower() if len(words) > 1 else "")
        if lang in PYTHON_LANGS or lang in SHELL_LANGS:
            code = "\n".join(body) + "\n"
            if lang == "console":
                code = console_commands(code)
            blocks.append(Block(path, i + 1, "python" if lang in PYTHON_LANGS else "shell", info, code))
        i = j + 1
    return blocks


def console_commands(text: str) -> str:
    """The commands of a ``console`` block: lines after a ``$ `` prompt, with their ``\\`` continuations."""
    out: list[str] = []
    continuing = False
    for line in text.splitlines():
        if continuing or line.startswith("$ "):
            out.append(line[2:] if not continuing else line)
            continuing = line.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


def markdown_pages(root: Path) -> list[Path]:
    """README.md and every page under docs/, in a fixed order."""
    pages = [root / "README.md"] if (root / "README.md").is_file() else []
    return pages + sorted((root / "docs").rglob("*.md"))


class ExampleError(AssertionError):
    """An example failed: names the page and line, with the block and its output."""


@dataclass
class PageRun:
    """The shared state of one page's blocks: its folder, Python namespace and environment."""

    root: Path  # the project
    folder: Path
    micro_root: Path | None = None
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    done: int = 0  # blocks run so far
    failed: str | None = None
    methods_before: frozenset[str] = frozenset()
    plugins_attempted: frozenset[str] = frozenset()

    def prepare(self) -> None:
        from spectral.methods import REGISTRY

        from spectral import plugins

        self.methods_before = frozenset(REGISTRY)
        self.plugins_attempted = frozenset(plugins._attempted)
        self.folder.mkdir(parents=True, exist_ok=True)
        for item in self.root.iterdir():
            if item.name in {".git", "cache", "test-artifacts"} or item.name.startswith(".pytest"):
                continue
            link = self.folder / item.name
            if not link.exists():
                link.symlink_to(item, target_is_directory=item.is_dir())
        if self.micro_root is not None and not (self.folder / "micro").exists():
            (self.folder / "micro").symlink_to(self.micro_root, target_is_directory=True)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.folder), *filter(None, [env.get("PYTHONPATH")])])
        env["SPECTRAL_CACHE_DIR"] = str(self.folder / "cache")  # one cache per page, shared by its blocks
        env["TQDM_DISABLE"] = "1"
        return env

    def run(self, block: Block) -> None:
        """Run ``block`` (after the blocks before it); raises :class:`ExampleError` naming its page and line."""
        where = block.where(self.root)
        if block.title:
            target = self.folder / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            return
        if block.lang == "shell":
            result = subprocess.run(["bash", "-e", "-c", block.code], cwd=self.folder, env=self.environment(),
                                    capture_output=True, text=True, timeout=SHELL_TIMEOUT_S)
            if result.returncode != 0:
                raise ExampleError(f"{where}: exit status {result.returncode}\n--- block ---\n{block.code}"
                                   f"--- stdout ---\n{result.stdout[-4000:]}--- stderr ---\n{result.stderr[-4000:]}")
            return
        before_cwd, before_path, before_env = os.getcwd(), list(sys.path), dict(os.environ)
        os.chdir(self.folder)
        sys.path.insert(0, str(self.folder))
        os.environ["SPECTRAL_CACHE_DIR"] = str(self.folder / "cache")
        try:
            exec(compile(block.code, where, "exec"), self.namespace)  # noqa: S102 - the project's own docs
        except BaseException as err:  # noqa: BLE001 - SystemExit too: report it as this block's failure
            raise ExampleError(f"{where}: {type(err).__name__}: {err}\n--- block ---\n{block.code}") from err
        finally:
            os.chdir(before_cwd)
            sys.path[:] = before_path
            os.environ.clear()
            os.environ.update(before_env)

    def close(self) -> None:
        """Forget what the page's Python blocks imported from its folder and registered as methods."""
        from spectral import plugins
        from spectral.methods import REGISTRY

        for name in set(REGISTRY) - self.methods_before:
            plugins.unregister_method(name)
        with plugins._lock:  # a plugin path the page loaded may be loaded afresh by whoever sets it next
            plugins._attempted.intersection_update(self.plugins_attempted)
            for source in set(plugins._failures) - self.plugins_attempted:
                plugins._failures.pop(source, None)
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(self.folder)) and not Path(file).resolve().is_relative_to(self.root.resolve()):
                sys.modules.pop(name, None)
