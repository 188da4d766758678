"""The -C dataset wrapper: layout, per-index seeds, cache keys and atomic export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_diffusion_tta.corrupted import CorruptedDataset, export_image_folders
from asklepios_diffusion_tta.corruptions import corrupt, sample_seed
from asklepios_diffusion_tta.params import CorruptedDatasetParams
from asklepios_diffusion_tta.robustness import ALL_CORRUPTIONS
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset


class _Split(torch.utils.data.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}


class _Data(Dataset):
    def __init__(self, n: int = 6) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 12, 12, generator=gen)
        self.targets = torch.arange(n) % 2

    def split(self, name):
        return _Split(self.images, self.targets)

    def facts(self):
        return DataFacts(num_classes=2, num_samples=len(self.targets))

    def labels(self, name):
        return self.targets.numpy()


def _wrapped(**params):
    return CorruptedDataset(CorruptedDatasetParams(**params), BuildContext()).wrap(_Data())


def test_layout_seeds_and_labels() -> None:
    data = _wrapped(
        corruptions=["gaussian_noise", "contrast"], severities=[2, 5], include_clean=True
    )
    test = data.split("test")
    assert len(test) == 6 * 5
    assert np.array_equal(data.labels("test"), np.tile(np.arange(6) % 2, 5))
    clean = test[3]
    assert clean["severity"] == 0 and torch.equal(clean["image"], _Data().images[3])
    sample = test[6 + 4]  # gaussian_noise, severity 2, index 4
    assert sample["corruption"] == ALL_CORRUPTIONS.index("gaussian_noise")
    assert sample["severity"] == 2 and sample["source_index"] == 4
    gen = torch.Generator().manual_seed(sample_seed(0, 4, "gaussian_noise", 2))
    expected = corrupt(_Data().images[4][None], "gaussian_noise", 2, gen)[0]
    assert torch.equal(sample["image"], expected)
    assert torch.equal(
        test[10]["image"],
        _wrapped(corruptions=["gaussian_noise"], severities=[2]).split("test")[4]["image"],
    )
    assert data.split("train")[0]["image"].shape == (3, 12, 12)
    assert "severity" not in data.split("train")[0]
    with pytest.raises(IndexError):
        test[len(test)]


def test_cache_is_keyed_and_equal_to_lazy(tmp_path) -> None:
    names = ["shot_noise", "defocus_blur"]  # per-sample seeded, and batched (deterministic)
    lazy = _wrapped(corruptions=names, severities=[3]).split("test")
    cached = _wrapped(corruptions=names, severities=[3], cache_dir=str(tmp_path)).split("test")
    for i in range(len(lazy)):
        torch.testing.assert_close(lazy[i]["image"], cached[i]["image"], atol=1e-6, rtol=0)
    assert len(list(tmp_path.rglob("*.pt"))) == 2 and not list(tmp_path.rglob("*.tmp"))
    _wrapped(corruptions=names, severities=[3], seed=1, cache_dir=str(tmp_path)).split("test")[0]
    assert len(list(tmp_path.rglob("*.pt"))) == 3  # another seed, another key
    reloaded = _wrapped(corruptions=names, severities=[3], cache_dir=str(tmp_path)).split("test")
    assert torch.equal(reloaded[2]["image"], cached[2]["image"])


def test_export_image_folders(tmp_path) -> None:
    split = _wrapped(corruptions=["pixelate"], severities=[1, 5]).split("test")
    root = export_image_folders(split, tmp_path / "C")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert len(files) == 12 and files[0] == "pixelate/1/0/000000.png"


def test_bad_params_are_named() -> None:
    with pytest.raises(ComponentError, match="frost_texture_dir"):
        CorruptedDataset(CorruptedDatasetParams(), BuildContext())
    with pytest.raises(ValueError, match="severities"):
        CorruptedDatasetParams(severities=[0])
    with pytest.raises(ComponentError, match="unknown corruption"):
        CorruptedDataset(CorruptedDatasetParams(corruptions=["rain"]), BuildContext())
