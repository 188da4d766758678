"""The synthetic FER set: alone, at a scale of the real set, mixed, with calibrated labels."""

from __future__ import annotations

import pytest
import torch
from _tiny import classifier_ref, save_classifier, write_generated
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.synthesis import read_generated
from asklepios_sdk.testing import host_components
from asklepios_synfer.calibrator import calibrate
from asklepios_synfer.params import LabelCalibratorParams, SyntheticFERParams
from asklepios_synfer.synthetic import SyntheticFER, member_probabilities

REAL = {"type": "core.digits", "image_size": 16, "channels": 1, "val_per_class": 2}


def _ctx() -> BuildContext:
    return BuildContext(components=host_components)


def test_alone_it_holds_out_a_fraction_as_val(tmp_path) -> None:
    folder = write_generated(tmp_path / "gen", count=10, classes=5)
    data = SyntheticFER(SyntheticFERParams(path=str(folder), val_fraction=0.2), _ctx())
    assert len(data.split("train")) == 8 and len(data.split("val")) == 2
    sample = data.split("train")[0]
    assert sample["synthetic"] is True and sample["image"].shape == (3, 16, 16)
    assert data.facts().num_classes == 5 and sum(data.facts().class_counts) == 8


def test_with_real_data_it_scales_mixes_and_converts_images(tmp_path) -> None:
    folder = write_generated(tmp_path / "gen", count=40, classes=10)
    scaled = SyntheticFER(SyntheticFERParams(path=str(folder), real=REAL, scale=0.02), _ctx())
    mixed = SyntheticFER(
        SyntheticFERParams(path=str(folder), real=REAL, scale=0.02, mix_real=True), _ctx()
    )
    synthetic = len(scaled.split("train"))
    assert synthetic == int(0.02 * (len(mixed.split("train")) - synthetic))
    assert set(mixed.split_names) == {"train", "val", "test"}
    first, last = mixed.split("train")[0], mixed.split("train")[len(mixed.split("train")) - 1]
    assert first["synthetic"] and not last["synthetic"]
    assert first["image"].shape == last["image"].shape == (1, 16, 16)  # grey like the real data
    with pytest.raises(ComponentError, match="generate more or lower the scale"):
        SyntheticFER(SyntheticFERParams(path=str(folder), real=REAL, scale=5), _ctx())


def test_calibrated_labels_follow_the_rule_and_are_cached(tmp_path) -> None:
    folder = write_generated(tmp_path / "gen", count=12, classes=3)
    members = [save_classifier(tmp_path / f"m{i}.pt", num_classes=3, seed=i) for i in range(3)]
    calibrator = {
        "models": [classifier_ref(m, 3) for m in members],
        "tau_conf": 0.34,
        "min_votes": 2,
    }
    params = SyntheticFERParams(path=str(folder), calibrator=calibrator, val_fraction=0.0)
    data = SyntheticFER(params, _ctx())
    cached = list(folder.glob("calibration-*.json"))
    assert len(cached) == 1
    records = read_generated(folder)
    probs = member_probabilities(folder, records, params.calibrator, _ctx())
    expected = calibrate(torch.tensor([r["label"] for r in records]), probs, 0.34, 2, False)
    kept = expected["label"][expected["kept"]].tolist()
    assert data.labels("train").tolist() == kept
    assert [data.split("train")[i]["label"] for i in range(len(kept))] == kept
    soft = SyntheticFERParams(
        path=str(folder), calibrator={**calibrator, "soft": True}, val_fraction=0.0
    )
    soft_data = SyntheticFER(soft, _ctx())
    assert len(soft_data.split("train")) == 12 and "soft_label" in soft_data.split("train")[0]


def test_scale_counts_the_items_calibration_keeps(tmp_path) -> None:
    folder = write_generated(tmp_path / "gen", count=40, classes=10)
    members = [save_classifier(tmp_path / f"m{i}.pt", num_classes=10, seed=i) for i in range(3)]
    calibrator = {"models": [classifier_ref(m, 10) for m in members], "tau_conf": 0.0}

    records = read_generated(folder)
    probs = member_probabilities(folder, records, LabelCalibratorParams(**calibrator), _ctx())
    rule = calibrate(torch.tensor([r["label"] for r in records]), probs, 0.0, 2, False)
    kept = rule["label"][rule["kept"]].tolist()
    assert 0 < len(kept) < len(records)  # the fixture: the calibrator drops some
    spec = {k: v for k, v in REAL.items() if k != "type"}
    real_train = len(host_components("dataset", "core.digits", spec, _ctx(), "t").split("train"))

    def scaled(items: int) -> SyntheticFER:
        scale = (items + 0.5) / real_train  # floor(scale × |real train|) = items
        params = SyntheticFERParams(path=str(folder), real=REAL, scale=scale, calibrator=calibrator)
        return SyntheticFER(params, _ctx())

    wanted = len(kept) - 1
    data = scaled(wanted)
    assert len(data.split("train")) == wanted  # not fewer: calibrated first, then taken
    assert data.labels("train").tolist() == kept[:wanted]
    assert [data.split("train")[i]["label"] for i in range(wanted)] == kept[:wanted]
    with pytest.raises(ComponentError, match="survive calibration; generate more"):
        scaled(len(kept) + 1)
