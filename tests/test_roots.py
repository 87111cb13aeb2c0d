"""Pool roots (issue 26, item 2): the dashboard opens paths inside ``$SPECTRAL_POOL_ROOTS`` only. Refused: a path
outside, one written through ``..``, one a symbolic link leads out of; the message names the setting and shows
nothing of the file. Error messages quote a file's leading bytes only inside the roots."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from spectral.app_state import PoolError, Workspace, open_pool
from spectral.checkpoints.formats import sniff_format
from spectral.checkpoints.pool import PoolSpec, TaskSpec
from spectral.errors import CheckpointError
from spectral.roots import (
    POOL_ROOTS_ENV,
    OutsidePoolRootsError,
    bounded_reads,
    check_path,
    may_show_bytes,
    paths_in,
    pool_roots,
)

sys.path.append(str(Path(__file__).resolve().parent / "checkpoints"))
import ckpt_writers as W  # noqa: E402

#: a copy of /etc/passwd's first bytes under a checkpoint's name: none of it may appear in a refusal
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def _secret_shown(message: str) -> bool:
    return "root:x" in message or SECRET[:16].hex(" ") in message or SECRET[:4].hex(" ") in message


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    inside, outside = tmp_path / "lab", tmp_path / "private"
    (inside / "pools").mkdir(parents=True)
    outside.mkdir()
    (outside / "zeroshot.pt").write_bytes(SECRET)
    (inside / "pools" / "ok.pt").write_bytes(SECRET)
    return {"inside": inside, "outside": outside, "roots": pool_roots({POOL_ROOTS_ENV: str(inside)})}


def test_roots_from_the_setting_and_the_default(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert pool_roots({POOL_ROOTS_ENV: f"{a}{os.pathsep}{b}{os.pathsep}"}) == (a.resolve(), b.resolve())
    assert pool_roots({}, cache_dir=b, cwd=a) == (a.resolve(), b.resolve())  # the current directory and the cache
    link = tmp_path / "link"
    link.symlink_to(a)
    assert pool_roots({POOL_ROOTS_ENV: str(link)}) == (a.resolve(),)  # a root is compared by where it leads


def test_a_path_inside_is_opened(layout: dict[str, Path]) -> None:
    target = layout["inside"] / "pools" / "ok.pt"
    assert check_path(target, layout["roots"]) == target.resolve()
    assert check_path(layout["inside"], layout["roots"]) == layout["inside"].resolve()  # a root itself
    # relative to the server's directory
    assert check_path("pools/ok.pt", layout["roots"], cwd=layout["inside"]) == target.resolve()


def test_a_path_outside_is_refused_naming_the_setting(layout: dict[str, Path]) -> None:
    with pytest.raises(OutsidePoolRootsError) as info:
        check_path(layout["outside"] / "zeroshot.pt", layout["roots"])
    message = str(info.value)
    assert POOL_ROOTS_ENV in message and "outside" in message and str(layout["inside"].resolve()) in message
    assert not _secret_shown(message)
    assert isinstance(info.value, PermissionError)
    with pytest.raises(OutsidePoolRootsError):
        check_path("/etc/passwd", layout["roots"])


def test_dot_dot_is_refused_even_when_it_lands_inside(layout: dict[str, Path]) -> None:
    inside = layout["inside"]
    with pytest.raises(OutsidePoolRootsError, match=r"'\.\.'.*" + POOL_ROOTS_ENV):
        check_path(inside / "pools" / ".." / ".." / "private" / "zeroshot.pt", layout["roots"])
    with pytest.raises(OutsidePoolRootsError, match=POOL_ROOTS_ENV):
        check_path(inside / "pools" / ".." / "pools" / "ok.pt", layout["roots"])


def test_a_symlink_leading_out_is_refused(layout: dict[str, Path]) -> None:
    inside, outside = layout["inside"], layout["outside"]
    (inside / "pools" / "escape.pt").symlink_to(outside / "zeroshot.pt")
    (inside / "escape_dir").symlink_to(outside)
    (inside / "pools" / "alias.pt").symlink_to(inside / "pools" / "ok.pt")
    for path in (inside / "pools" / "escape.pt", inside / "escape_dir" / "zeroshot.pt", inside / "escape_dir"):
        with pytest.raises(OutsidePoolRootsError, match="symbolic link.*" + POOL_ROOTS_ENV) as info:
            check_path(path, layout["roots"])
        assert not _secret_shown(str(info.value))
    assert check_path(inside / "pools" / "alias.pt", layout["roots"]) == (inside / "pools" / "ok.pt").resolve()


def test_paths_in_a_pool_spec() -> None:
    spec = PoolSpec(base=Path("/b/zs.pt"), tasks=[TaskSpec("MNIST", Path("/b/m.pt"), head=Path("/h/m.pt")),
                                                  TaskSpec("SVHN", Path("/b/s.pt"), data=Path("/d/svhn"))],
                    text_checkpoint=Path("/t.pt"))
    found = dict(paths_in(spec))
    assert set(found.values()) == {Path(p) for p in ("/b/zs.pt", "/b/m.pt", "/h/m.pt", "/b/s.pt", "/d/svhn", "/t.pt")}
    assert found["tasks[MNIST].head"] == Path("/h/m.pt") and found["base"] == Path("/b/zs.pt")


def test_leading_bytes_are_quoted_only_inside_the_roots(layout: dict[str, Path]) -> None:
    outside, inside = layout["outside"] / "zeroshot.pt", layout["inside"] / "pools" / "ok.pt"
    with pytest.raises(CheckpointError) as unbounded:  # the CLI: no bound, the bytes help the file's owner
        sniff_format(outside)
    assert SECRET[:16].hex(" ") in str(unbounded.value)
    with bounded_reads(layout["roots"]):
        assert not may_show_bytes(outside) and may_show_bytes(inside)
        with pytest.raises(CheckpointError) as hidden:
            sniff_format(outside)
        with pytest.raises(CheckpointError) as shown:
            sniff_format(inside)
    assert not _secret_shown(str(hidden.value)) and POOL_ROOTS_ENV in str(hidden.value)
    assert SECRET[:16].hex(" ") in str(shown.value)
    assert may_show_bytes(outside)  # the bound ends with the block


def _pool_yaml(folder: Path, base: Path, tasks: dict[str, Path]) -> Path:
    path = folder / "pool.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "architecture": W.TINY,
                                    "tasks": {t: {"checkpoint": str(c)} for t, c in tasks.items()}}))
    return path


def test_a_pool_inside_naming_a_file_outside_is_refused_before_reading(layout: dict[str, Path]) -> None:
    """The YAML lies inside the roots, its base is the outside 'zeroshot.pt': refused, nothing of it shown."""
    inside = layout["inside"] / "pools"
    W.register_tiny_configs(inside / "configs")
    model = W.make_clip(0)
    task = W.write_open_clip_safetensors(W.finetune(model, 1), inside / "MNIST.safetensors")
    spec = _pool_yaml(inside, layout["outside"] / "zeroshot.pt", {"MNIST": task})
    with pytest.raises(OutsidePoolRootsError) as info:
        open_pool(str(spec), roots=layout["roots"])
    message = str(info.value)
    assert "base" in message and POOL_ROOTS_ENV in message and not _secret_shown(message)
    # through a workspace (what the dashboard does): the same refusal, nothing read
    ws = Workspace(str(spec), device="cpu", roots=layout["roots"])
    with pytest.raises(OutsidePoolRootsError) as again:
        ws.open()
    assert not _secret_shown(str(again.value)) and not ws.is_open
    # the same YAML, unbounded (the CLI): the file is read and its bytes quoted for its owner
    with pytest.raises((CheckpointError, PoolError)) as cli:
        Workspace(str(spec), device="cpu").open()
    assert SECRET[:16].hex(" ") in str(cli.value)


def test_a_pool_outside_is_refused(layout: dict[str, Path]) -> None:
    with pytest.raises(OutsidePoolRootsError, match=POOL_ROOTS_ENV):
        open_pool(str(layout["outside"]), roots=layout["roots"])
    with pytest.raises(OutsidePoolRootsError, match=POOL_ROOTS_ENV):
        open_pool(str(layout["inside"] / ".." / "private"), roots=layout["roots"])
