"""MagMax and DARE on hand-computed cases; DARE's expectation is Task Arithmetic."""
import pytest
import torch

from helpers import make_vit_state_dicts
from spectral import Engine, TaskSet
from spectral.errors import ParameterError
from spectral.methods import get_method
from spectral.methods.dare import dare, drop_and_rescale, key_generator
from spectral.methods.elementwise import ties
from spectral.methods.magmax import magmax


def test_magmax_hand_computed():
    tv = {"w": torch.tensor([[1.0, -3.0, 2.0, 0.5],
                             [-2.0, 1.0, 2.0, -0.5],
                             [0.5, 2.5, -2.0, 0.25]]),
          "b": torch.tensor([[0.0], [-1.0], [1.0]])}
    out = magmax(tv, alpha=0.5, tie_break="first")
    # largest |.| per column: -2 (task 1), -3 (task 0), 2 / 2 / -2 tie → task 0's 2, 0.5 / -0.5 tie → task 0's 0.5
    torch.testing.assert_close(out["w"], 0.5 * torch.tensor([-2.0, -3.0, 2.0, 0.5]))
    torch.testing.assert_close(out["b"], 0.5 * torch.tensor([-1.0]))  # |-1| = |1|: the earlier task
    # the authors' rule (default): ties go to the later task: 2 / 2 / -2 → task 2's -2, 0.5 / -0.5 → task 1's -0.5
    last = magmax(tv, alpha=0.5)
    torch.testing.assert_close(last["w"], 0.5 * torch.tensor([-2.0, -3.0, -2.0, -0.5]))
    torch.testing.assert_close(last["b"], 0.5 * torch.tensor([1.0]))


def test_magmax_engine_merges_every_parameter(tmp_path):
    base, ft = make_vit_state_dicts(num_tasks=3, seed=1)
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "c", device="cpu")
    merged = engine.merge("magmax", alpha=0.7)
    for key in engine.taskset.keys:
        stacked = engine.taskset.task_matrices(key)
        idx = (stacked.shape[0] - 1) - stacked.abs().flip(0).argmax(0, keepdim=True)  # ties: the later task
        torch.testing.assert_close(merged[key], base[key] + 0.7 * stacked.gather(0, idx)[0])
    assert get_method("magmax").resolve_params({})["alpha"] == 0.5


def test_dare_hand_computed_mask():
    x = torch.arange(1.0, 13.0).reshape(2, 6)
    g = key_generator(3, "w")
    keep = torch.rand(x.shape, generator=key_generator(3, "w")) >= 0.25
    out = drop_and_rescale(x, p=0.25, generator=g)
    torch.testing.assert_close(out, torch.where(keep, x / 0.75, torch.zeros(())))
    assert 0 < int(keep.sum()) < x.numel()
    assert torch.equal(drop_and_rescale(x, p=0.0, generator=g), x)
    with pytest.raises(ParameterError):
        drop_and_rescale(x, p=1.0, generator=g)


def test_dare_is_seeded_per_key_and_seed():
    tv = {"a": torch.randn(3, 8, 8), "b": torch.randn(3, 8)}
    one = dare(tv, alpha=1.0, p=0.5, seed=4)
    again = dare(dict(reversed(list(tv.items()))), alpha=1.0, p=0.5, seed=4)  # order does not matter
    other = dare(tv, alpha=1.0, p=0.5, seed=5)
    for k in tv:
        assert torch.equal(one[k], again[k])
    assert not torch.equal(one["a"], other["a"])
    assert torch.equal(dare(tv, alpha=1.0, p=0.0)["a"], tv["a"].sum(0))


def test_dare_expectation_is_task_arithmetic():
    """E[DARE(Δ)] = Δ: the mean of many seeded draws approaches α·Σ_t Δ_t within its standard error."""
    g = torch.Generator().manual_seed(0)
    tv = {"w": torch.randn(4, 16, 12, generator=g, dtype=torch.float64)}
    p, alpha, draws = 0.6, 0.3, 400
    mean = sum(dare(tv, alpha=alpha, p=p, seed=s)["w"] for s in range(draws)) / draws
    ta = alpha * tv["w"].sum(0)
    # per entry: Var = α² Σ_t Δ_t² p/(1−p) / draws
    se = (alpha**2 * (tv["w"] ** 2).sum(0) * p / (1 - p) / draws).sqrt()
    z = (mean - ta) / se
    assert float(z.abs().max()) < 5.0
    assert abs(float(z.mean())) < 0.2  # 192 entries: the mean z-score has standard error ≈ 0.07
    assert 0.8 < float(z.std()) < 1.2


def test_dare_then_ties_is_ties_of_the_dropped_vectors():
    g = torch.Generator().manual_seed(1)
    tv = {"w": torch.randn(3, 10, 6, generator=g), "b": torch.randn(3, 6, generator=g)}
    got = dare(tv, alpha=0.8, p=0.3, merge="ties", density=0.4, seed=2)
    dropped = {k: drop_and_rescale(v, p=0.3, generator=key_generator(2, k)) for k, v in tv.items()}
    expected = ties(dropped, alpha=0.8, density=0.4)
    for k in tv:
        torch.testing.assert_close(got[k], expected[k])
    with pytest.raises(ParameterError):
        dare(tv, merge="magmax")


def test_dare_engine_uses_declared_defaults(tmp_path):
    base, ft = make_vit_state_dicts(num_tasks=2, seed=3)
    engine = Engine(TaskSet(base, ft), cache_dir=tmp_path / "c", device="cpu")
    merged = engine.merge("dare", alpha=0.5, p=0.2, seed=7)
    expected = dare(engine.taskset.lazy_task_vectors(), alpha=0.5, p=0.2, seed=7)
    for key in engine.taskset.keys:
        torch.testing.assert_close(merged[key], base[key] + expected[key])
    resolved = get_method("dare").resolve_params({})
    assert resolved == {"alpha": 0.3, "p": 0.5, "merge": "task_arithmetic", "density": 0.2, "seed": 0,
                        "trim": "global", "normalize": True}
    with pytest.raises(ParameterError):
        get_method("dare").resolve_params({"p": 1.0})
