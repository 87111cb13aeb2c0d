"""Every fenced python and shell example of README.md and docs/ runs (issue 27); a broken one fails.

One test per block, named after its page and line (``docs/plugins.md:42``). The blocks of a page run in order in one
folder and share state (see :mod:`doc_examples`), so a block's test first runs the page's earlier blocks if
``-k`` left them out. Blocks marked ``notest`` are reported as skipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from doc_examples import Block, ExampleError, PageRun, markdown_pages, parse_blocks  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BLOCKS: list[Block] = [b for page in markdown_pages(ROOT) for b in parse_blocks(page.read_text(), page)]


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory, micro_root):
    runs: dict[Path, PageRun] = {}

    def get(page: Path) -> PageRun:
        if page not in runs:
            folder = tmp_path_factory.mktemp(page.stem.replace(".", "_") or "page")
            runs[page] = PageRun(ROOT, folder, micro_root)
            runs[page].prepare()
        return runs[page]

    yield get
    for run in runs.values():
        run.close()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where(ROOT) for b in BLOCKS])
def test_example(block: Block, page_runs, one_torch_thread) -> None:
    if block.skipped:
        pytest.skip("marked notest")
    run = page_runs(block.path)
    page_blocks = [b for b in BLOCKS if b.path == block.path and not b.skipped]
    index = page_blocks.index(block)
    if run.failed is not None:
        pytest.skip(f"an earlier example of this page failed: {run.failed}")
    try:
        for earlier in page_blocks[run.done:index + 1]:
            run.run(earlier)
            run.done += 1
    except ExampleError:
        run.failed = page_blocks[run.done].where(ROOT)
        raise


def test_the_examples_are_collected() -> None:
    """The collector finds the README's and the guide's examples (an empty list would pass trivially)."""
    pages = {b.path.name for b in BLOCKS if not b.skipped}
    assert "README.md" in pages and len([b for b in BLOCKS if not b.skipped]) >= 10


# -- the collector itself ------------------------------------------------------------------------------------------
PAGE = '''# A page

```python
x = 2
```

Text.

```python
assert x * 21 == 42
```

```bash notest
exit 3
```

```bash
test "$(cat note.txt)" = hello
```

```text title="note.txt"
hello
```

    ```sh
    echo indented
    ```

```console
$ echo one \\
    two
one two
```
'''


def test_parse_blocks_reads_languages_lines_notest_and_titles(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    blocks = parse_blocks(PAGE, page)
    assert [(b.line, b.lang, b.skipped) for b in blocks] == [
        (3, "python", False), (9, "python", False), (13, "shell", True), (17, "shell", False),
        (25, "shell", False), (29, "shell", False)]
    assert blocks[4].code == "echo indented\n" and blocks[5].code == "echo one \\\n    two\n"
    text_block = parse_blocks('```python title="m.py"\nA = 1\n```\n', page)[0]
    assert text_block.title == "m.py" and not text_block.skipped


def run_page(text: str, folder: Path, name: str = "page.md") -> list[str]:
    """Run every runnable block of ``text`` as the test does; returns the places run."""
    page = folder / name
    page.write_text(text)
    run = PageRun(ROOT, folder / "run")
    run.prepare()
    try:
        done = []
        for block in parse_blocks(text, page):
            if not block.skipped:
                run.run(block)
                done.append(block.where(folder))
        return done
    finally:
        run.close()


def test_a_page_runs_in_order_sharing_state(tmp_path: Path) -> None:
    page = '```python\nx = 2\n```\n\n```python\nassert x * 21 == 42\nopen("out.txt", "w").write("hi")\n```\n' \
           '```bash\ntest "$(cat out.txt)" = hi\ntest -f spectral/__init__.py -a -f app.py\n```\n'
    assert run_page(page, tmp_path) == ["page.md:1", "page.md:5", "page.md:9"]


@pytest.mark.parametrize("bad, message", [
    ("```python\nimport spectral\nspectral.merge_layer('no_such_method', None)\n```\n", r"page\.md:1: .*no_such_method"),
    ("```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n", r"page\.md:5: AssertionError"),
    ("```bash\nfalse\necho never\n```\n", r"page\.md:1: exit status 1"),
    ("```bash\necho hi > x.txt\n```\n```console\n$ test -f y.txt\n```\n", r"page\.md:4: exit status 1"),
])
def test_a_broken_example_fails_naming_its_page_and_line(tmp_path: Path, bad: str, message: str) -> None:
    with pytest.raises(ExampleError, match=message):
        run_page(bad, tmp_path)


def test_a_notest_block_is_not_run(tmp_path: Path) -> None:
    assert run_page("```bash notest\nexit 1\n```\n```python notest\nraise SystemExit(1)\n```\n", tmp_path) == []


def test_a_method_registered_by_a_page_is_forgotten_after_it(tmp_path: Path) -> None:
    import spectral

    page = ('```python\nimport spectral\nfrom spectral import Method\n'
            'spectral.register_method(Method(name="doc_example_mean", display_name="mean", paper="-", params=(),\n'
            '    layer_fn=lambda layer, **kw: layer.task_matrices.mean(0), non_matrix="mean"))\n'
            'assert "doc_example_mean" in spectral.list_methods()\n```\n')
    run_page(page, tmp_path)
    assert "doc_example_mean" not in spectral.list_methods()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run calls the README's test command, word for word."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()[-1].strip()
    commands = [line.split("#")[0].strip() for line in readme.splitlines() if "python3 -m pytest" in line]
    assert ci in commands, (ci, commands)
