"""The generated tasks: shapes, ranges, determinism, suites."""
from __future__ import annotations

import pytest
import torch

from spectral.zoo import ALL_TASKS, SUITES, TASKS, get_task
from spectral.zoo.train import balanced_labels, derive_seed, generate_split


def test_suites_are_nested_and_named_after_the_benchmark():
    assert len(ALL_TASKS) == 20 == len(set(ALL_TASKS))
    assert SUITES[8] == ALL_TASKS[:8] and SUITES[14] == ALL_TASKS[:14] and SUITES[20] == ALL_TASKS
    analogues = [TASKS[t].analogue for t in SUITES[8]]
    assert analogues == ["SUN397", "Cars", "RESISC45", "EuroSAT", "SVHN", "GTSRB", "MNIST", "DTD"]


def test_related_and_unrelated_groups():
    groups: dict[str, list[str]] = {}
    for t in ALL_TASKS:
        groups.setdefault(TASKS[t].group, []).append(t)
    assert {"digits", "house_numbers", "signs"} <= set(groups["glyphs"])
    assert set(groups["remote sensing"]) == {"aerial", "landuse"}
    assert len(groups) >= 8  # plenty of unrelated tasks too
    # the digit tasks share concepts (positives for each other in pre-training)
    assert TASKS["digits"].concept_ids() == TASKS["house_numbers"].concept_ids()


@pytest.mark.parametrize("name", ALL_TASKS)
def test_render_shapes_range_and_determinism(name):
    task = get_task(name)
    labels = torch.arange(2 * task.num_classes) % task.num_classes
    a = task.render(labels, torch.Generator().manual_seed(1), 1.0)
    b = task.render(labels, torch.Generator().manual_seed(1), 1.0)
    c = task.render(labels, torch.Generator().manual_seed(2), 1.0)
    assert a.shape == (labels.numel(), 3, 32, 32)
    assert a.dtype == torch.float32 and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len(task.prompts(0)) == len(task.templates) and task.classes[0] in task.prompts(0)[0]


def test_generate_split_is_balanced_and_deterministic():
    task = get_task("colors")
    x1, y1 = generate_split(task, 40, 123)
    x2, y2 = generate_split(task, 40, 123)
    assert x1.dtype == torch.uint8 and x1.shape == (40, 3, 32, 32)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.bincount(y1, minlength=10).tolist() == [4] * 10
    assert torch.bincount(balanced_labels(7, 3, torch.Generator().manual_seed(0)), minlength=3).tolist() == [3, 2, 2]


def test_derive_seed_is_stable():
    assert derive_seed(0, "a", 1) == derive_seed(0, "a", 1)
    assert derive_seed(0, "a", 1) != derive_seed(0, "a", 2) != derive_seed(1, "a", 1)
    assert 0 <= derive_seed(5, "x") < 2**63
