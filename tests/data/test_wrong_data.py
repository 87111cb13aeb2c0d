"""The silent-wrong-data case of issue 24: a task whose data is the papers' data location must get its own data
set from it, never another one that happens to lie there."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import data_fakes as F  # noqa: E402

from spectral.data.folders import open_folder_dataset  # noqa: E402


def test_the_data_location_serves_the_named_data_set_not_resisc45(tmp_path):
    fakes = F.write_location(tmp_path / "data", ["MNIST", "RESISC45", "CIFAR10"])
    for name in ("MNIST", "CIFAR10"):
        test = open_folder_dataset(tmp_path / "data", "test", transform=None, dataset=name)
        assert len(test) == len(fakes[name].test), name
        assert len(test.classes) == 10, name
        assert [test[i][1] for i in range(len(test))] == fakes[name].test, name
