"""Fine-tuning recipes: the SGD option updates along the gradient; an unknown optimiser is refused."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from spectral.zoo import train as T
from spectral.zoo.build import ZooConfig
from spectral.zoo.model import create_clip, preprocess


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    visual = create_clip(ZooConfig.micro().model).visual
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(8) % 4
    head = F.normalize(torch.randn(4, visual.output_dim), dim=-1)
    return visual, head, images, labels


def test_one_sgd_step_is_minus_lr_times_gradient(tiny):
    visual, head, images, labels = tiny
    cfg = dataclasses.replace(ZooConfig.micro().train, finetune_optimizer="sgd", finetune_lr=0.1,
                              finetune_steps=1, finetune_batch=8, finetune_weight_decay=0.0)
    reference = copy.deepcopy(visual).train()
    loss = F.cross_entropy(10.0 * F.normalize(reference(preprocess(images)), dim=-1) @ head.T, labels)
    loss.backward()
    tuned = copy.deepcopy(visual)
    T.finetune(tuned, head, 10.0, images, labels, cfg, seed=1)
    key = "transformer.resblocks.0.mlp.c_fc.weight"
    before = dict(visual.named_parameters())[key].detach()
    after = dict(tuned.named_parameters())[key].detach()
    grad = dict(reference.named_parameters())[key].grad
    assert grad.abs().max() > 0
    # one step from zero momentum: θ₁ − θ₀ = −lr · g (the batch is the whole set, so its order does not matter)
    torch.testing.assert_close(after - before, -0.1 * grad, rtol=1e-4, atol=1e-7)


def test_unknown_optimizer_is_refused(tiny):
    visual, head, images, labels = tiny
    cfg = dataclasses.replace(ZooConfig.micro().train, finetune_optimizer="lion", finetune_steps=1)
    with pytest.raises(ValueError, match="finetune_optimizer"):
        T.finetune(copy.deepcopy(visual), head, 10.0, images, labels, cfg, seed=1)
