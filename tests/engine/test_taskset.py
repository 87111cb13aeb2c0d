import pytest
import torch

from spectral.errors import (
    DtypeMismatchError, EmptyTaskSetError, MissingKeyError, NonFiniteError, ShapeMismatchError, TaskSetError,
)
from spectral.taskset import TaskSet, attn_mlp_filter, block_index, content_hash, layer_kind


def test_matrix_keys_follow_the_papers_convention(vit_state_dicts):
    base, ft = vit_state_dicts
    ts = TaskSet(base, ft)
    assert ts.num_tasks == 3 and ts.task_names == ["task0", "task1", "task2"]
    assert "visual.positional_embedding" in ts.matrix_keys and "visual.proj" in ts.matrix_keys
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" in ts.matrix_keys
    assert "visual.transformer.resblocks.0.mlp.c_proj.weight" in ts.matrix_keys
    for not_matrix in ["visual.conv1.weight", "visual.class_embedding", "visual.ln_pre.weight",
                       "visual.transformer.resblocks.0.attn.in_proj_bias"]:
        assert not_matrix in ts.other_keys
    assert "visual.step_counter" not in ts.keys  # integer buffer: carried, not merged
    assert len(ts.matrix_keys) == 2 * 4 + 2


def test_attn_mlp_filter_and_key_helpers(vit_state_dicts):
    base, ft = vit_state_dicts
    ts = TaskSet(base, ft, matrix_filter="attn_mlp")
    assert len(ts.matrix_keys) == 8 and "visual.proj" not in ts.matrix_keys
    assert attn_mlp_filter("x.attn.out_proj.weight", torch.zeros(2, 2))
    assert layer_kind("visual.transformer.resblocks.3.mlp.c_fc.weight") == "c_fc"
    assert block_index("visual.transformer.resblocks.11.attn.in_proj_weight") == 11
    assert block_index("visual.proj") is None


def test_task_matrices_are_differences(vit_state_dicts):
    base, ft = vit_state_dicts
    ts = TaskSet(base, ft)
    key = "visual.proj"
    stacked = ts.task_matrices(key)
    assert stacked.shape == (3, *base[key].shape)
    torch.testing.assert_close(stacked[1], ft["task1"][key] - base[key])
    lazy = ts.lazy_task_vectors()
    assert list(lazy) == ts.keys and torch.equal(lazy[key], stacked)


def test_content_hash_tracks_content():
    a = torch.arange(6.0).reshape(2, 3)
    assert content_hash(a) == content_hash(a.clone())
    assert content_hash(a) != content_hash(a.reshape(3, 2))
    b = a.clone(); b[0, 0] += 1e-6
    assert content_hash(a) != content_hash(b)
    assert content_hash(a) != content_hash(a.double())


def test_named_errors(vit_state_dicts):
    base, ft = vit_state_dicts
    with pytest.raises(EmptyTaskSetError, match="T = 0"):
        TaskSet(base, {})
    bad = {k: dict(v) for k, v in ft.items()}
    del bad["task1"]["visual.proj"]
    with pytest.raises(MissingKeyError, match=r"task1.*visual\.proj"):
        TaskSet(base, bad)
    bad = {k: dict(v) for k, v in ft.items()}
    bad["task2"]["visual.proj"] = torch.zeros(3, 3)
    with pytest.raises(ShapeMismatchError, match=r"task2.*visual\.proj.*\(3, 3\).*\(8, 6\)"):
        TaskSet(base, bad)
    bad = {k: dict(v) for k, v in ft.items()}
    bad["task0"]["visual.ln_pre.bias"] = torch.tensor([float("nan")] * 8)
    with pytest.raises(NonFiniteError, match=r"task0.*ln_pre\.bias"):
        TaskSet(base, bad)
    bad = {k: dict(v) for k, v in ft.items()}
    bad["task0"]["visual.proj"] = bad["task0"]["visual.proj"].half()
    with pytest.raises(DtypeMismatchError, match=r"task0.*visual\.proj.*float16"):
        TaskSet(base, bad)
    bad = {k: dict(v) for k, v in ft.items()}
    bad["task0"]["visual.extra"] = torch.zeros(2)
    with pytest.raises(MissingKeyError, match="not in the base"):
        TaskSet(base, bad)
    assert issubclass(NonFiniteError, TaskSetError) and issubclass(NonFiniteError, ValueError)
    ts = TaskSet(base, ft)
    with pytest.raises(MissingKeyError, match="no task named"):
        ts.task_matrix("nope", "visual.proj")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_task_matrix_into_writes_exactly_what_task_matrix_returns(dtype):
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(6, 4, generator=g).to(dtype)}
    ts = TaskSet(base, {"a": {"w": (base["w"].double() + 1e-2 * torch.randn(6, 4, generator=g, dtype=torch.float64))
                               .to(dtype)}})
    assert ts.task_matrix_dtype("a", "w") == (torch.float64 if dtype == torch.float64 else torch.float32)
    out = torch.full((6, 4), float("nan"), dtype=ts.task_matrix_dtype("a", "w"))
    assert ts.task_matrix_into("a", "w", out) is out
    assert torch.equal(out, ts.task_matrix("a", "w"))
