"""Cache housekeeping: sizes by kind, clean by kind / pool / LRU, dry runs, the size budget; results never deleted."""
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import spectral
from spectral import housekeeping as hk
from spectral.cache import SVDCache
from spectral.cli import main
from spectral.io import atomic_folder, atomic_save_tensors, find_temporaries
from spectral.linalg import thin_svd
from spectral.taskset import TaskSet

from helpers import make_vit_state_dicts

HOUR = 3600.0


def factors(seed: int):
    g = torch.Generator().manual_seed(seed)
    return thin_svd(torch.randn(24, 16, generator=g))


def age(path: Path, hours: float) -> None:
    t = time.time() - hours * HOUR
    os.utime(path, (t, t))


def make_cache(root: Path) -> dict[str, Path]:
    """One entry of every kind, with last uses 1…9 hours ago (svd entries oldest → newest: s0, s1, s2)."""
    c = SVDCache(root)
    paths = {}
    for i in range(3):
        key = f"{i}{i}" * 32
        c.put(key, factors(i))
        paths[f"s{i}"] = c.path(key)
        age(c.path(key), 9 - i)
    (root / "images" / "mnist-test-abc").mkdir(parents=True)
    (root / "images" / "mnist-test-abc" / "pixels.u8").write_bytes(b"\x01" * 5000)
    for p in [root / "images" / "mnist-test-abc" / "pixels.u8", root / "images" / "mnist-test-abc"]:
        age(p, 5)
    paths["img"] = root / "images" / "mnist-test-abc"
    (root / "heads").mkdir()
    paths["head"] = root / "heads" / "h1.safetensors"
    paths["head"].write_bytes(b"\x02" * 3000)
    age(paths["head"], 4)
    (root / "zoo" / "zoo-micro").mkdir(parents=True)
    (root / "zoo" / "zoo-micro" / "base.safetensors").write_bytes(b"\x03" * 7000)
    paths["zoo"] = root / "zoo" / "zoo-micro"
    age(paths["zoo"] / "base.safetensors", 20)
    age(paths["zoo"], 20)
    paths["results"] = root / "results.sqlite"
    paths["results"].write_bytes(b"\x04" * 4000)
    (root / "results.sqlite-wal").write_bytes(b"\x05" * 100)
    (root / "adapt" / "run1").mkdir(parents=True)
    paths["adapt"] = root / "adapt" / "run1" / "step10.safetensors"
    paths["adapt"].write_bytes(b"\x06" * 6000)
    for p in [paths["results"], root / "results.sqlite-wal", paths["adapt"]]:
        age(p, 30)  # the oldest things in the cache: an LRU that ignored kinds would take them first
    return paths


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def results_intact(root: Path, paths) -> bool:
    return (paths["results"].read_bytes() == b"\x04" * 4000 and (root / "results.sqlite-wal").is_file()
            and paths["adapt"].read_bytes() == b"\x06" * 6000)


def test_usage_by_kind(tmp_path):
    root = tmp_path / "c"
    make_cache(root)
    usage = hk.usage_by_kind(root)
    svd_bytes = sum(p.stat().st_size for p in (root / "svd").rglob("*.safetensors"))
    assert usage["svd"] == (3, svd_bytes)
    assert usage["images"] == (1, 5000) and usage["heads"] == (1, 3000) and usage["zoo"] == (1, 7000)
    assert usage["results"] == (3, 4000 + 100 + 6000)  # results.sqlite, its -wal, adapt/
    assert hk.total_size(root) == sum(tree(root).values()) == sum(size for _, size in usage.values())


def test_lru_plan_takes_oldest_evictable_first_and_never_results_or_zoo(tmp_path):
    root = tmp_path / "c"
    p = make_cache(root)
    plan, after = hk.lru_plan(root, 0)
    assert [e.path for e in plan] == [p["s0"], p["s1"], p["s2"], p["img"], p["head"]]
    assert after == 7000 + 4000 + 100 + 6000  # what no LRU clean may touch
    one = p["s0"].stat().st_size
    plan, after = hk.lru_plan(root, hk.total_size(root) - one)  # freeing one entry's bytes is enough
    assert [e.path for e in plan] == [p["s0"]]


def test_a_hit_refreshes_recency(tmp_path):
    root = tmp_path / "c"
    p = make_cache(root)
    assert SVDCache(root).get("00" * 32) is not None  # s0 used now: it becomes the most recent
    plan, _ = hk.lru_plan(root, 0)
    assert plan[-1].path == p["s0"] and plan[0].path == p["s1"]


def test_clean_everything_keeps_results(tmp_path, capsys):
    root = tmp_path / "c"
    p = make_cache(root)
    argv = ["cache", "clean", "--cache-dir", str(root), "--kind", "svd", "--kind", "images", "--kind", "heads",
            "--kind", "zoo", "--lru-to", "0", "--temps"]
    assert main(argv) == 0
    assert results_intact(root, p)
    assert set(tree(root)) == {"results.sqlite", "results.sqlite-wal", "adapt/run1/step10.safetensors"}
    assert main(["cache", "clean", "--cache-dir", str(root), "--kind", "results"]) == 2
    assert "never deleted" in capsys.readouterr().err
    assert results_intact(root, p)
    with pytest.raises(spectral.SpectralError, match="never deleted"):
        hk.delete(hk.list_entries(root, ["results"]))
    assert results_intact(root, p)


def test_dry_run_deletes_nothing_and_lists_what_it_would(tmp_path, capsys):
    root = tmp_path / "c"
    p = make_cache(root)
    before = tree(root)
    assert main(["cache", "clean", "--cache-dir", str(root), "--kind", "zoo", "--lru-to", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert tree(root) == before
    for name in ("s0", "s1", "s2", "img", "head", "zoo"):
        assert str(p[name]) in out
    assert "results.sqlite" not in out and "adapt" not in out
    assert "nothing was deleted" in out


def test_lru_to_removes_oldest_down_to_the_size(tmp_path, capsys):
    root = tmp_path / "c"
    p = make_cache(root)
    target = hk.total_size(root) - p["s0"].stat().st_size - p["s1"].stat().st_size
    assert main(["cache", "clean", "--cache-dir", str(root), "--lru-to", str(target)]) == 0
    assert not p["s0"].exists() and not p["s1"].exists()
    assert p["s2"].exists() and p["img"].exists() and p["head"].exists() and p["zoo"].exists()
    assert hk.total_size(root) <= target and results_intact(root, p)


def test_budget_evicts_least_recently_used_after_writes_never_results_or_zoo(tmp_path, monkeypatch, caplog):
    root = tmp_path / "c"
    p = make_cache(root)
    hk._estimates.clear()
    entry = p["s0"].stat().st_size
    budget = hk.total_size(root) + entry // 2  # one more SVD entry goes over it
    monkeypatch.setenv(hk.BUDGET_ENV, str(budget / 1e9))
    SVDCache(root).put("99" * 32, factors(9))
    assert hk.total_size(root) <= budget
    assert not p["s0"].exists() and (root / "svd" / "99" / f"{'99' * 32}.safetensors").exists()  # oldest went first
    assert p["zoo"].exists() and results_intact(root, p)

    monkeypatch.setenv(hk.BUDGET_ENV, "0")  # a budget nothing evictable can meet: everything evictable goes
    hk._estimates.clear()
    SVDCache(root).put("88" * 32, factors(8))
    assert list_kinds(root) == {"zoo", "results"} and results_intact(root, p) and p["zoo"].exists()
    assert "never evicted" in caplog.text
    hk._estimates.clear()


def list_kinds(root):
    return {e.kind for e in hk.list_entries(root)}


def test_budget_rejects_a_bad_value(monkeypatch):
    monkeypatch.setenv(hk.BUDGET_ENV, "lots")
    with pytest.raises(spectral.SpectralError, match=hk.BUDGET_ENV):
        hk.budget_bytes()


def test_clean_by_pool_removes_exactly_that_pools_entries(tmp_path, capsys):
    root = tmp_path / "c"
    pools = {}
    for name, seed in (("a", 0), ("b", 1)):
        base, ft = make_vit_state_dicts(num_tasks=2, seed=seed)
        folder = tmp_path / name
        folder.mkdir()
        save_file({k: v.contiguous() for k, v in base.items()}, folder / "base.safetensors")
        files = []
        for task, sd in ft.items():
            files.append(str(folder / f"{task}.safetensors"))
            save_file({k: v.contiguous() for k, v in sd.items()}, files[-1])
        ts = TaskSet(base, ft)
        engine = spectral.Engine(ts, cache_dir=root)
        engine.build_cache()
        engine.merge("iso_c", alpha=1.0)  # derived entries (SVD of the sum) belong to the pool too
        pools[name] = (ts, ["--base", str(folder / "base.safetensors"), "--finetuned", *files])
    keys_a = set(hk.pool_svd_keys(pools["a"][0]))
    before = {p.stem for p in (root / "svd").rglob("*.safetensors")}
    assert keys_a & before and before - keys_a  # both pools have entries, including a's derived ones
    assert any(k not in {pools["a"][0].matrix_hash(t, m) for t in range(2) for m in pools["a"][0].matrix_keys}
               for k in keys_a & before)
    assert main(["cache", "clean", "--cache-dir", str(root), *pools["a"][1], "--dry-run"]) == 0
    assert {p.stem for p in (root / "svd").rglob("*.safetensors")} == before
    assert main(["cache", "clean", "--cache-dir", str(root), *pools["a"][1]]) == 0
    assert {p.stem for p in (root / "svd").rglob("*.safetensors")} == before - keys_a


def test_status_reports_sizes_and_stale_temporaries_and_clean_removes_them(tmp_path, capsys):
    root = tmp_path / "c"
    make_cache(root)
    stale = root / "svd" / "00" / f".{'00' * 32}.safetensors.k3j2h1.tmp"
    stale.write_bytes(b"x" * 10)
    age(stale, 3)
    stale_st = root / "images" / ".tmpAb12Cd"  # safetensors' own temporary name
    stale_st.write_bytes(b"y")
    age(stale_st, 3)
    live = root / "heads" / ".h2.safetensors.zz9.tmp"  # a write in progress
    live.write_bytes(b"z")
    assert main(["cache", "status", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    for kind in ("svd", "images", "heads", "zoo", "results"):
        assert f"  {kind} " in out
    assert str(stale) in out and str(stale_st) in out and str(live) not in out
    assert "2 stale temporaries" in out
    assert main(["cache", "clean", "--cache-dir", str(root), "--temps"]) == 0
    assert not stale.exists() and not stale_st.exists() and live.exists()


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "images" / "entry"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "a").write_bytes(b"2")
            raise RuntimeError("decode failed")
    assert (target / "a").read_bytes() == b"1" and find_temporaries(tmp_path) == []
    with atomic_folder(target) as tmp:  # over an existing entry
        (tmp / "b").write_bytes(b"3")
    assert sorted(os.listdir(target)) == ["b"] and find_temporaries(tmp_path) == []


def test_atomic_save_of_a_row_of_a_batch_stores_only_that_row(tmp_path):
    batch = torch.randn(4, 5, 3)
    atomic_save_tensors(tmp_path / "row.safetensors", {"U": batch[2]})
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(tmp_path / "row.safetensors"))["U"], batch[2])
    assert (tmp_path / "row.safetensors").stat().st_size < 5 * 3 * 4 + 200


def test_size_parsing():
    assert hk.parse_size("20G") == hk.parse_size("20GB") == 20 * 10**9
    assert hk.parse_size("1.5GiB") == int(1.5 * 2**30) and hk.parse_size("500m") == 5 * 10**8
    assert hk.parse_size("0") == 0
    with pytest.raises(spectral.SpectralError, match="size"):
        hk.parse_size("big")


def test_written_files_get_ordinary_permissions(tmp_path):
    from spectral.io import FILE_MODE

    atomic_save_tensors(tmp_path / "t.safetensors", {"a": torch.zeros(2)})  # safetensors' own temporary is 0600
    assert (tmp_path / "t.safetensors").stat().st_mode & 0o777 == FILE_MODE
