"""Survival tables: bins, T_max checks, stratified splits and train-only encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_unisurv.datasets import CSVDataset, SksurvDataset, SyntheticDataset, load_sksurv
from asklepios_unisurv.margins import KMMarginWrapper
from asklepios_unisurv.params import (
    CSVDatasetParams,
    KMMarginWrapperParams,
    SksurvDatasetParams,
    SyntheticDatasetParams,
    UniSurvBackboneParams,
)
from asklepios_unisurv.transformer import UniSurvBackbone
from pydantic import ValidationError

CTX = BuildContext()


def test_gbsg2_months_splits_and_train_only_scaling():
    data = SksurvDataset(SksurvDatasetParams(name="gbsg2"), CTX)
    sizes = {name: len(data.split(name)) for name in ("train", "val", "test")}
    assert sum(sizes.values()) == 686 and sizes["test"] == 138
    _, days, events = load_sksurv("gbsg2")
    months = days // 30
    assert sorted(np.concatenate([data.split(n).times for n in sizes])) == sorted(months)
    facts = data.facts()
    assert facts.task == "survival" and facts.extras["t_max"] == 96
    assert facts.num_features == 5 + 2 + 2 + 3
    assert max(facts.times) <= 88
    train = data.split("train").features.numpy()[:, :5]
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)
    assert np.abs(data.split("test").features.numpy()[:, :5].mean(0)).max() > 1e-3
    test_events = data.split("test").events.mean()
    assert test_events == pytest.approx(events.mean(), abs=0.02)
    sample = data.split("train")[0]
    assert sample["image"].shape == (12,) and sample["time"].dtype == torch.float32


@pytest.mark.parametrize(("name", "n"), [("whas500", 500), ("veterans", 137), ("aids", 1151)])
def test_other_bundled_sets_fit_the_default_horizon(name, n):
    data = SksurvDataset(SksurvDatasetParams(name=name), CTX)
    assert sum(len(data.split(s)) for s in ("train", "val", "test")) == n
    assert max(data.facts().times) < 96


def test_flchain_needs_a_larger_horizon_or_coarser_bins():
    with pytest.raises(ComponentError, match="too_long: coarsen"):
        SksurvDataset(SksurvDatasetParams(name="flchain"), CTX)
    data = SksurvDataset(SksurvDatasetParams(name="flchain", too_long="coarsen"), CTX)
    assert data.facts().extras["bin_width"] == 60.0
    assert max(data.facts().times) < 96
    assert np.isfinite(data.split("train").features.numpy()).all()


def test_five_fold_test_splits_partition_the_data():
    tests = [
        SksurvDataset(SksurvDatasetParams(name="veterans", num_folds=5, fold=k), CTX).rows["test"]
        for k in range(5)
    ]
    assert sorted(np.concatenate(tests)) == list(range(137))
    with pytest.raises(ValidationError, match="fold"):
        SksurvDatasetParams(num_folds=5, fold=5)


def test_csv_table_with_categories_missing_values_and_longitudinal(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "days": rng.integers(0, 600, n),
            "dead": rng.integers(0, 2, n),
            "age": rng.normal(60, 10, n),
            "site": rng.choice(["a", "b", None], n),
        }
    )
    frame.loc[3, "age"] = np.nan
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    longi = rng.random((n, 3, 24, 30)).astype(np.float32)
    np.save(tmp_path / "longi.npy", longi)
    params = CSVDatasetParams(
        path=str(path),
        time_column="days",
        event_column="dead",
        time_per_bin=30,
        t_max=24,
        longitudinal_path=str(tmp_path / "longi.npy"),
    )
    data = CSVDataset(params, CTX)
    assert data.facts().num_features == 1 + 3
    sample = data.split("val")[0]
    assert sample["longitudinal"].shape == (3, 24, 30)
    assert np.isfinite(data.split("train").features.numpy()).all()
    with pytest.raises(ComponentError, match="'nope'"):
        CSVDataset(params.model_copy(update={"time_column": "nope"}), CTX)
    with pytest.raises(ComponentError, match="no such file"):
        CSVDataset(params.model_copy(update={"path": str(tmp_path / "x.csv")}), CTX)
    with pytest.raises(ComponentError, match="time rows"):
        CSVDataset(params.model_copy(update={"t_max": 48}), CTX)


def test_synthetic_generator_censors_about_the_requested_fraction():
    data = SyntheticDataset(SyntheticDatasetParams(num_samples=2000, censoring=0.5), CTX)
    events = np.concatenate([data.split(s).events for s in ("train", "val", "test")])
    times = np.concatenate([data.split(s).times for s in ("train", "val", "test")])
    assert 0.4 <= 1 - events.mean() <= 0.6
    assert times.max() <= 47 and times.min() >= 0


def test_dataset_feeds_the_margin_wrapper_and_the_backbone():
    data = KMMarginWrapper(KMMarginWrapperParams(), CTX).wrap(
        SksurvDataset(SksurvDatasetParams(name="gbsg2"), CTX)
    )
    train = data.split("train")
    assert int(train.margin.max()) < 96
    model = UniSurvBackbone(
        UniSurvBackboneParams(d_model=8, num_layers=1, num_heads=2, d_ff=8),
        BuildContext(data=data.facts()),
    )
    batch = torch.utils.data.default_collate([train[i] for i in range(4)])
    assert model(batch)["logits"].shape == (4, 96)
