"""The SVD cache verifies what it serves, and concurrent builders of the same entries both succeed."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import spectral
from spectral.cache import SVDCache
from spectral.io import find_temporaries, tensor_checksum
from spectral.linalg import thin_svd
from spectral.taskset import TaskSet

ROOT = Path(__file__).resolve().parents[2]


def data_offset(path: Path) -> int:
    """First byte after the safetensors header (8-byte length + JSON)."""
    with open(path, "rb") as handle:
        return 8 + int.from_bytes(handle.read(8), "little")


def overwrite_middle(path: Path, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = data_offset(path)
    mid = start + (len(data) - start) // 2 - n // 2
    assert mid >= start and mid + n <= len(data)
    data[mid:mid + n] = bytes((b ^ 0x5A) | 1 for b in data[mid:mid + n])  # every byte changes
    path.write_bytes(bytes(data))


def test_a_corrupted_entry_is_recomputed_never_served(vit_state_dicts, tmp_path, caplog):
    base, ft = vit_state_dicts
    clean = spectral.Engine(TaskSet(base, ft), cache_dir=tmp_path)
    clean.build_cache()
    expected = clean.merge("tsv_m", alpha=1.0, k_frac=0.5)

    ts = TaskSet(base, ft)
    key = max(ts.matrix_keys, key=lambda k: ts.base[k].numel())
    victim = clean.cache.path(ts.matrix_hash(1, key))
    before = {n: t.clone() for n, t in load_file(str(victim)).items()}  # load_file maps the file: copy
    overwrite_middle(victim)
    after = load_file(str(victim))  # the header is intact: safetensors itself loads the garbage without complaint
    assert any(not torch.equal(before[n], after[n]) for n in before)

    fresh = spectral.Engine(TaskSet(base, ft), cache_dir=tmp_path)  # a new process: nothing in memory
    got = fresh.merge("tsv_m", alpha=1.0, k_frac=0.5)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert fresh.cache.corrupt == 1
    assert "fails its checksum" in caplog.text and victim.name in caplog.text
    repaired = load_file(str(victim))  # the recompute replaced the bad entry
    for n in before:
        assert torch.equal(repaired[n], before[n])
    assert SVDCache(tmp_path).get(ts.matrix_hash(1, key)) is not None


def test_a_corrupted_entry_is_removed_so_cache_build_recomputes_it(tmp_path, caplog):
    c = SVDCache(tmp_path)
    key = "ab" * 32
    c.put(key, thin_svd(torch.randn(40, 30)))
    overwrite_middle(c.path(key))
    fresh = SVDCache(tmp_path)
    assert fresh.get(key) is None and fresh.misses == 1 and fresh.corrupt == 1
    assert not fresh.contains(key)  # `cache build` sees it missing and computes it again


def test_an_entry_without_checksum_is_a_miss(tmp_path, caplog):
    c = SVDCache(tmp_path)
    key = "cd" * 32
    U, S, V = thin_svd(torch.randn(12, 7))
    c.path(key).parent.mkdir(parents=True)
    save_file({"U": U.contiguous(), "S": S, "V": V.contiguous()}, str(c.path(key)), metadata={"format": "1", "shape": "12,7"})
    assert c.get(key) is None
    assert "has no checksum" in caplog.text


def test_the_checksum_covers_header_and_bytes():
    t = {"U": torch.arange(6.0).reshape(2, 3), "S": torch.ones(3)}
    same = {"S": torch.ones(3), "U": torch.arange(6.0).reshape(2, 3).clone()}
    assert tensor_checksum(t) == tensor_checksum(same)
    flipped = {"U": t["U"].clone(), "S": t["S"]}
    flipped["U"].view(torch.int32)[1, 1] ^= 1  # one bit
    assert tensor_checksum(flipped) != tensor_checksum(t)
    assert tensor_checksum({"U": t["U"].reshape(3, 2), "S": t["S"]}) != tensor_checksum(t)  # same bytes, new shape
    assert tensor_checksum({"U": t["U"].double(), "S": t["S"]}) != tensor_checksum(t)


def test_two_concurrent_cache_builds_both_succeed(vit_state_dicts, tmp_path):
    base, ft = vit_state_dicts
    save_file({k: v.contiguous() for k, v in base.items()}, tmp_path / "base.safetensors")
    paths = []
    for name, sd in ft.items():
        paths.append(str(tmp_path / f"{name}.safetensors"))
        save_file({k: v.contiguous() for k, v in sd.items()}, paths[-1])
    cache_dir = tmp_path / "cache"
    cmd = [sys.executable, "-m", "spectral", "cache", "build", "--base", str(tmp_path / "base.safetensors"),
           "--finetuned", *paths, "--cache-dir", str(cache_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
        assert "30/30 task matrices cached" in out
    ts = TaskSet(base, ft)
    cache = SVDCache(cache_dir)
    for key in ts.matrix_keys:
        for t in range(ts.num_tasks):
            assert cache.get(ts.matrix_hash(t, key)) is not None
    assert cache.corrupt == 0 and cache.misses == 0
    assert find_temporaries(cache_dir) == []  # nothing left behind by either writer
