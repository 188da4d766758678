"""Label fractions and the class-balanced sampler (§10.5), against the repo's pandas calls."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from asklepios_panderm.datasets import DermCsv
from asklepios_panderm.params import (
    ClassBalancedSamplerParams,
    DermCsvParams,
    LabelFractionSamplerParams,
)
from asklepios_panderm.samplers import (
    ClassBalancedSampler,
    LabelFractionSampler,
    class_balanced_weights,
    label_fraction_indices,
)
from asklepios_sdk import BuildContext
from PIL import Image


def _fixture_csv(tmp_path: Path) -> Path:
    """100 rows: train 80 with class counts 50/25/5 (interleaved), val 10, test 10."""
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    labels = [0] * 50 + [1] * 25 + [2] * 5
    order = np.random.default_rng(1).permutation(80)
    rows = [{"image": "x.png", "split": "train", "label": labels[i]} for i in order]
    rows += [
        {"image": "x.png", "split": s, "label": i % 3} for s in ("val", "test") for i in range(10)
    ]
    rows = rows[:40] + rows[80:90] + rows[40:80] + rows[90:]  # splits interleave in the CSV
    path = tmp_path / "fixture.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "split", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _train_labels(tmp_path: Path) -> np.ndarray:
    dataset = DermCsv(DermCsvParams(csv=str(_fixture_csv(tmp_path))), BuildContext())
    labels = dataset.labels("train")
    assert labels is not None and len(labels) == 80
    return labels


def test_v1_keeps_the_head_of_a_seeded_shuffle(tmp_path: Path) -> None:
    labels = _train_labels(tmp_path)
    kept = label_fraction_indices(labels, 0.1, "v1", 42)
    assert len(kept) == int(80 * 0.1) == 8
    assert np.array_equal(kept, label_fraction_indices(labels, 0.1, "v1", 42))
    assert len(set(kept.tolist())) == 8


def test_stratified_keeps_at_least_one_per_class(tmp_path: Path) -> None:
    labels = _train_labels(tmp_path)
    kept = label_fraction_indices(labels, 0.1, "stratified", 42)
    counts = np.bincount(labels[kept], minlength=3)
    expected = [min(n, max(1, int(n * 0.1))) for n in (50, 25, 5)]
    assert counts.tolist() == expected == [5, 2, 1]


def test_full_fraction_returns_every_train_row(tmp_path: Path) -> None:
    labels = _train_labels(tmp_path)
    for mode in ("v1", "stratified"):
        assert sorted(label_fraction_indices(labels, 1.0, mode).tolist()) == list(range(80))


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_rows_match_the_repos_pandas_calls(tmp_path: Path, fraction: float) -> None:
    pd = pytest.importorskip("pandas")
    labels = _train_labels(tmp_path)
    frame = pd.DataFrame({"row": np.arange(80), "label": labels, "split": "train"})
    # PanDerm Derm_Dataset (v1)
    v1 = frame.sample(frac=1, random_state=42).reset_index(drop=True).head(int(80 * fraction))
    assert label_fraction_indices(labels, fraction, "v1").tolist() == v1["row"].tolist()
    # PanDerm-2 load_data_balanced
    train = frame.query("split == 'train'").sample(frac=1, random_state=42).reset_index(drop=True)
    parts = []
    for _, group in train.groupby("label"):
        n = min(len(group), max(1, int(len(group) * fraction)))
        parts.append(group.sample(n=n, random_state=42))
    balanced = pd.concat(parts).sample(frac=1, random_state=42).reset_index(drop=True)
    assert label_fraction_indices(labels, fraction).tolist() == balanced["row"].tolist()


def test_the_sampler_visits_the_kept_rows_each_epoch(tmp_path: Path) -> None:
    labels = _train_labels(tmp_path)
    ctx = BuildContext().replace(data=BuildContext().data.replace(labels=tuple(labels)))
    sampler = LabelFractionSampler(LabelFractionSamplerParams(fraction=0.1), ctx)
    kept = sorted(label_fraction_indices(labels, 0.1).tolist())
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        assert sorted(orders[-1]) == kept
    assert orders[0] != orders[1] and len(sampler) == 8


def test_class_balanced_weights_are_n_over_k_count(tmp_path: Path) -> None:
    labels = _train_labels(tmp_path)
    weights = class_balanced_weights(labels)
    expected = {0: 80 / (3 * 50), 1: 80 / (3 * 25), 2: 80 / (3 * 5)}
    for label, value in expected.items():
        np.testing.assert_allclose(weights[labels == label], value)
    ctx = BuildContext().replace(data=BuildContext().data.replace(labels=tuple(labels)))
    sampler = ClassBalancedSampler(ClassBalancedSamplerParams(), ctx)
    draws = []
    for epoch in range(40):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    assert len(sampler) == 80
    shares = np.bincount(labels[draws], minlength=3) / len(draws)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.03)  # each class drawn equally often


def test_samplers_need_labels() -> None:
    with pytest.raises(Exception, match="training labels"):
        LabelFractionSampler(LabelFractionSamplerParams(), BuildContext())
