import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import spectral
from spectral.cli import main, parse_params
from spectral.taskset import TaskSet


@pytest.fixture
def checkpoint_files(vit_state_dicts, tmp_path):
    base, ft = vit_state_dicts
    save_file({k: v.contiguous() for k, v in base.items()}, tmp_path / "base.safetensors")
    paths = []
    for name, sd in ft.items():
        paths.append(tmp_path / f"{name}.safetensors")
        save_file({k: v.contiguous() for k, v in sd.items()}, paths[-1])
    return tmp_path / "base.safetensors", paths


def test_parse_params():
    assert parse_params(["k_frac=0.1", "orthogonalisation=whitening", "min_tasks=2"]) == {
        "k_frac": 0.1, "orthogonalisation": "whitening", "min_tasks": 2}
    with pytest.raises(spectral.SpectralError, match="name=value"):
        parse_params(["k_frac"])


def test_cache_build_then_merge_writes_the_engine_result(checkpoint_files, vit_state_dicts, tmp_path, capsys):
    base_path, ft_paths = checkpoint_files
    common = ["--base", str(base_path), "--finetuned", *map(str, ft_paths), "--cache-dir", str(tmp_path / "c")]
    assert main(["cache", "build", *common]) == 0
    printed = capsys.readouterr().out
    assert "30/30 task matrices cached" in printed and re.search(r"s on cpu: hashing .* s, SVDs [0-9.]+ s", printed)
    out = tmp_path / "merged.safetensors"
    assert main(["merge", *common, "--method", "tsv_m", "--param", "k_frac=0.25", "--alpha", "0.8",
                 "-o", str(out)]) == 0
    base, ft = vit_state_dicts
    expected = spectral.Engine(TaskSet(base, ft), cache_dir=tmp_path / "c2").merge("tsv_m", alpha=0.8, k_frac=0.25)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        for key in expected:
            torch.testing.assert_close(f.get_tensor(key), expected[key], atol=1e-5, rtol=1e-5)
    assert meta["method"] == "tsv_m" and json.loads(meta["params"])["k_frac"] == 0.25
    assert not list(tmp_path.glob(".merged*"))  # no temporary file left behind


def test_clear_errors(checkpoint_files, tmp_path, capsys):
    base_path, ft_paths = checkpoint_files
    common = ["--base", str(base_path), "--finetuned", *map(str, ft_paths), "--cache-dir", str(tmp_path / "c")]
    assert main(["merge", *common, "--method", "iso_cts", "--param", "common_frac=1.5", "-o", "x.safetensors"]) == 2
    assert "common_frac" in capsys.readouterr().err
    assert main(["merge", *common, "--method", "nope", "-o", "x.safetensors"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["cache", "build", "--base", str(tmp_path / "missing.pt"), "--finetuned", "a.pt"]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_methods_lists_parameters(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "tsv_m" in out and "common_frac=0.8" in out
