"""Class names and prompt templates of the 20 benchmark data sets."""
from __future__ import annotations

import pytest

from spectral.data.templates import (
    ALL_DATASETS,
    CLASS_NAMES,
    DATASETS_8,
    DATASETS_14,
    TEMPLATES,
    canonical_dataset_name,
    class_names,
    get_templates,
    render_prompts,
)

SIZES = {
    "Cars": 196, "DTD": 47, "EuroSAT": 10, "GTSRB": 43, "MNIST": 10, "RESISC45": 45, "SUN397": 397, "SVHN": 10,
    "CIFAR100": 100, "STL10": 10, "Flowers102": 102, "OxfordIIITPet": 37, "PCAM": 2, "FER2013": 7, "EMNIST": 10,
    "CIFAR10": 10, "Food101": 101, "FashionMNIST": 10, "RenderedSST2": 2, "KMNIST": 10,
}
N_TEMPLATES = {
    "Cars": 8, "DTD": 8, "EuroSAT": 3, "GTSRB": 3, "MNIST": 1, "RESISC45": 18, "SUN397": 2, "SVHN": 1,
    "CIFAR100": 18, "STL10": 2, "Flowers102": 1, "OxfordIIITPet": 1, "PCAM": 1, "FER2013": 6, "EMNIST": 1,
    "CIFAR10": 18, "Food101": 1, "FashionMNIST": 2, "RenderedSST2": 1, "KMNIST": 1,
}


def test_suites():
    assert len(ALL_DATASETS) == 20 and len(set(ALL_DATASETS)) == 20
    assert DATASETS_8 == ["Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN"]
    assert set(DATASETS_14) - set(DATASETS_8) == {"CIFAR100", "STL10", "Flowers102", "OxfordIIITPet", "PCAM", "FER2013"}


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_every_benchmark_has_unique_class_names_and_templates(name):
    names = class_names(name)
    assert len(names) == SIZES[name] == len(set(names))
    templates = get_templates(name)
    assert len(templates) == N_TEMPLATES[name]
    assert all("{c}" in t for t in templates) and len(set(templates)) == len(templates)


def test_known_facts():
    assert render_prompts(get_templates("MNIST"), "7") == ['a photo of the number: "7".']
    assert render_prompts(get_templates("PCAM"), "lymph node") == ["this is a photo of lymph node"]  # no period
    assert get_templates("GTSRB")[0] == 'a zoomed in photo of a "{c}" traffic sign.'
    assert get_templates("RESISC45")[:2] == ["satellite imagery of {c}.", "aerial imagery of {c}."]
    assert get_templates("CarsVal") == get_templates("Cars")
    assert class_names("EuroSAT")[0] == "annual crop land" and class_names("EuroSAT")[-1] == "lake or sea"
    assert class_names("Cars")[0] == "AM General Hummer SUV 2000"
    assert class_names("Cars")[-1] == "smart fortwo Convertible 2012"
    sun = class_names("SUN397")
    assert sun[0] == "abbey" and sun[-1] == "youth hostel"
    assert sun.index("jail cell") < sun.index("jail indoor")  # sorted folder names, as ImageFolder reads them
    assert class_names("FER2013") == ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
    assert class_names("KMNIST")[0] == "o" and class_names("RenderedSST2") == ["negative", "positive"]
    assert class_names("CIFAR100")[1] == "aquarium_fish"  # the reference keeps torchvision's underscores
    assert class_names("RESISC45")[2] == "baseball diamond"
    assert TEMPLATES["SVHN"] == TEMPLATES["MNIST"] and CLASS_NAMES["SVHN"] == [str(i) for i in range(10)]


def test_names_and_aliases():
    assert canonical_dataset_name("CarsVal") == "Cars"
    assert canonical_dataset_name("stanford_cars") == "Cars"
    assert canonical_dataset_name("EuroSAT_splits") == "EuroSAT"
    assert canonical_dataset_name("sun397") == "SUN397"
    assert canonical_dataset_name("ImageNet") is None
    with pytest.raises(KeyError, match="not one of the 20"):
        get_templates("ImageNet")
    assert render_prompts(["a {} photo"], "dog") == ["a dog photo"]
