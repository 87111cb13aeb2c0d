"""Pre-training corpus: the caption confusion that keeps zero-shot weak while the image features stay good."""
from __future__ import annotations

import dataclasses

import torch

from spectral.zoo import ModelSpec, get_task, get_tokenizer
from spectral.zoo import train as T


def _caption_classes(confusion: float) -> tuple[torch.Tensor, torch.Tensor, T.PretrainCorpus]:
    """(true class, caption class) per image of a small 'digits' corpus."""
    task = get_task("digits")
    cfg = dataclasses.replace(T.TrainConfig(), pretrain_images_per_task=64, caption_confusion=confusion)
    corpus = T.build_corpus([task], get_tokenizer(ModelSpec()), cfg, seed=0, size=32)
    per_level = cfg.pretrain_images_per_task // 4
    true = torch.cat([T.generate_split(task, per_level, T.derive_seed(0, "pretrain", task.name, lvl),
                                       nuisance=cfg.pretrain_nuisance * lvl / 3)[1] for lvl in range(4)])
    # every class has the same number of captions, so the caption's first index names its class
    caption_class = corpus.caption_index // int(corpus.caption_count[0])
    return true, caption_class, corpus


def test_no_confusion_captions_name_the_image_class():
    true, caption_class, _ = _caption_classes(0.0)
    assert torch.equal(true, caption_class)


def test_full_confusion_is_one_cycle_through_the_classes():
    true, caption_class, corpus = _caption_classes(1.0)
    assert not (true == caption_class).any()  # no class is confused with itself
    mapping = {int(t): int(c) for t, c in zip(true, caption_class)}
    assert all(int(c) == mapping[int(t)] for t, c in zip(true, caption_class))  # a fixed class → class map
    seen, c = [], 0
    for _ in range(10):
        seen.append(c)
        c = mapping[c]
    assert sorted(seen) == list(range(10)) and c == 0  # a single 10-cycle
    # the concept (the soft positives of the contrastive loss) follows the caption, not the image
    assert torch.equal(corpus.concept, caption_class)


def test_partial_confusion_rate():
    true, caption_class, _ = _caption_classes(0.5)
    rate = float((true != caption_class).float().mean())
    assert 0.3 < rate < 0.7
