"""Built-in datasets: digits long-tail profile, image folders, CSV manifests, MedMNIST, tabular."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios.builtins.datasets import (
    CsvDataset,
    DigitsDataset,
    ImageFolderDataset,
    MedMNISTDataset,
    TabularDataset,
    long_tail_counts,
)
from asklepios.builtins.params import (
    CsvDatasetParams,
    DigitsDatasetParams,
    ImageFolderDatasetParams,
    MedMNISTDatasetParams,
    TabularDatasetParams,
)
from asklepios.builtins.samplers import RandomSampler, SequentialSampler
from asklepios_sdk import BuildContext, ComponentError, EmptyParams


def test_long_tail_profile_is_geometric() -> None:
    counts = long_tail_counts(100, 5, 10.0)
    expected = [int(100 * 10.0 ** (-c / 4)) for c in range(5)]
    assert counts == expected and counts[0] == 100 and counts[-1] == 10


def test_digits_long_tailed_train_and_balanced_held_out_splits() -> None:
    data = DigitsDataset(DigitsDatasetParams(image_size=12, imbalance_ratio=10, channels=3))
    facts = data.facts()
    assert facts.class_counts == tuple(long_tail_counts(174 - 55, 10, 10.0))
    assert np.bincount(data.labels("test")).tolist() == [40] * 10
    assert np.bincount(data.labels("val")).tolist() == [15] * 10
    sample = data.split("train")[0]
    assert sample["image"].shape == (3, 12, 12) and float(sample["image"].min()) >= 0
    assert facts.image_size == (12, 12) and facts.in_channels == 3
    with pytest.raises(ComponentError, match="leaves no training data"):
        DigitsDataset(DigitsDatasetParams(test_per_class=100, val_per_class=100))


def _write_png(path, value: int, mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    size = (6, 5)
    Image.new(mode, size, (value,) * 3 if mode == "RGB" else value).save(path)


def test_image_folder_with_and_without_split_folders(tmp_path) -> None:
    for split in ("train", "val"):
        for cls, value in (("benign", 10), ("malignant", 200)):
            for i in range(3):
                _write_png(tmp_path / "a" / split / cls / f"{i}.png", value)
    data = ImageFolderDataset(ImageFolderDatasetParams(root=str(tmp_path / "a"), image_size=4))
    assert data.split_names == ("train", "val")
    assert data.facts().class_names == ("benign", "malignant")
    sample = data.split("val")[5]
    assert sample["image"].shape == (3, 4, 4) and int(sample["label"]) == 1
    assert float(sample["image"].mean()) == pytest.approx(200 / 255, abs=1e-3)
    for cls in ("x", "y"):
        for i in range(10):
            _write_png(tmp_path / "b" / cls / f"{i}.png", 5, "L")
    flat = ImageFolderDataset(
        ImageFolderDatasetParams(
            root=str(tmp_path / "b"), mode="L", val_fraction=0.2, test_fraction=0.2
        )
    )
    assert [len(flat.split(s)) for s in ("train", "val", "test")] == [12, 4, 4]
    with pytest.raises(ComponentError, match="no class sub-folders"):
        ImageFolderDataset(ImageFolderDatasetParams(root=str(tmp_path / "a" / "train" / "benign")))


def test_csv_manifest_passes_extra_columns(tmp_path) -> None:
    rows = ["path,label,split,age"]
    for i in range(8):
        _write_png(tmp_path / "img" / f"{i}.png", i * 10)
        rows.append(
            f"img/{i}.png,{'yes' if i % 2 else 'no'},{'train' if i < 6 else 'test'},{40 + i}"
        )
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    data = CsvDataset(CsvDatasetParams(path=str(tmp_path / "m.csv"), split_column="split"))
    assert data.split_names == ("train", "test")
    sample = data.split("test")[1]
    assert sample["meta"] == {"age": "47"} and int(sample["label"]) == 1
    assert data.facts().class_names == ("no", "yes")
    with pytest.raises(ComponentError, match="no column"):
        CsvDataset(CsvDatasetParams(path=str(tmp_path / "m.csv"), label_column="diagnosis"))


def test_medmnist_reads_a_local_file_and_explains_a_missing_one(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    np.savez(tmp_path / "pathmnist.npz", **arrays)
    data = MedMNISTDataset(MedMNISTDatasetParams(path=str(tmp_path / "pathmnist.npz")))
    sample = data.split("train")[2]
    assert sample["image"].shape == (3, 28, 28) and sample["image"].dtype == torch.float32
    torch.testing.assert_close(
        sample["image"], torch.from_numpy(arrays["train_images"][2]).permute(2, 0, 1).float() / 255
    )
    assert data.facts().num_classes == 3
    with pytest.raises(ComponentError, match=r"not found.*zenodo"):
        MedMNISTDataset(MedMNISTDatasetParams(path=str(tmp_path / "dermamnist.npz")))


def test_tabular_standardises_with_training_statistics(tmp_path) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    header = ",".join(["f" + str(i) for i in range(5)] + ["target"])
    lines = [header] + [
        ",".join(f"{v:.6g}" for v in row[:5]) + f",{t}"
        for row, t in zip(bunch.data, bunch.target, strict=True)
    ]
    (tmp_path / "bc.csv").write_text("\n".join(lines) + "\n")
    data = TabularDataset(TabularDatasetParams(path=str(tmp_path / "bc.csv"), target="target"))
    facts = data.facts()
    assert facts.task == "classification" and facts.num_features == 5 and facts.num_classes == 2
    x = torch.stack([data.split("train")[i]["image"] for i in range(len(data.split("train")))])
    torch.testing.assert_close(x.mean(0), torch.zeros(5), atol=1e-4, rtol=0)
    with pytest.raises(ComponentError, match="not numeric"):
        (tmp_path / "bad.csv").write_text("a,target\nx,1\ny,0\n")
        TabularDataset(TabularDatasetParams(path=str(tmp_path / "bad.csv"), target="target"))


def test_builtin_samplers_follow_seed_and_epoch() -> None:
    from asklepios_sdk import DataFacts

    ctx = BuildContext(data=DataFacts(num_samples=9), seed=1)
    sampler = RandomSampler(EmptyParams(), ctx)
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(first) == list(range(9)) and list(sampler) != first
    assert list(SequentialSampler(EmptyParams(), ctx)) == list(range(9))
