"""Acceptance check 5: seconds -> feature grid and truncation; feature files and the TAL dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from asklepios_ophnet.annotations import AnnotationError
from asklepios_ophnet.cli import main
from asklepios_ophnet.datasets import TALFeaturesDataset
from asklepios_ophnet.features import FeatureGrid, convert_pickles, load_features
from asklepios_ophnet.params import TALFeaturesDatasetParams, TruncateParams
from asklepios_ophnet.transforms import Truncate
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.sequences import IGNORE_INDEX, split_collate
from ophnet_files import (
    LOCA_HEADER,
    TAL_LENGTHS,
    TAL_VIDEOS,
    write_csv,
    write_features,
    write_tal_fixture,
)


def test_seconds_map_to_the_feature_grid():
    fps, stride, frames, t = 25.0, 16, 16, 3.2
    expected = t * fps / stride - 0.5 * frames / stride
    grid = FeatureGrid(fps=fps, stride=stride, num_frames=frames)
    assert grid.to_grid(np.array([t]))[0] == pytest.approx(expected) == pytest.approx(4.5)
    assert grid.to_seconds(grid.to_grid(np.array([t])))[0] == pytest.approx(t)
    assert grid.step_seconds == pytest.approx(0.64) and grid.time_offset == pytest.approx(0.32)


def _sample(length=10):
    segments = torch.tensor([[0.0, 2.0], [2.5, 4.5], [4.0, 7.0], [6.0, 10.0], [1.0, 9.0]])
    return {
        "features": torch.arange(length, dtype=torch.float32)[:, None].repeat(1, 3),
        "frame_labels": torch.arange(length),
        "segments": segments,
        "segment_labels": torch.arange(len(segments)),
        "step_seconds": 0.5,
        "time_offset": 0.25,
    }


def test_truncation_keeps_exactly_the_segments_with_half_their_length_inside():
    transform = Truncate(TruncateParams(max_seq_len=4, trunc_thresh=0.5), BuildContext())
    sample = _sample()
    seen_starts = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out = transform(dict(sample))
        assert out["features"].shape == (4, 3)
        start = int(out["features"][0, 0])
        seen_starts.add(start)
        assert out["frame_labels"].tolist() == list(range(start, start + 4))
        assert out["time_offset"] == pytest.approx(0.25 + start * 0.5)
        expected_segments, expected_labels = [], []
        for (s, e), label in zip(sample["segments"].tolist(), range(5), strict=True):
            left, right = max(s, start), min(e, start + 4)
            if max(0.0, right - left) / (e - s) >= 0.5:
                expected_segments.append([left - start, right - start])
                expected_labels.append(label)
        assert out["segment_labels"].tolist() == expected_labels
        assert out["segments"].numpy() == pytest.approx(np.array(expected_segments).reshape(-1, 2))
        assert expected_labels, "a window keeping no segment was accepted"
    assert len(seen_starts) > 3  # the window moves


def test_short_sequences_are_cropped_by_the_ratio_or_left_whole():
    torch.manual_seed(0)
    crop = Truncate(TruncateParams(max_seq_len=100, crop_ratio=(0.5, 0.8)), BuildContext())
    lengths = {len(crop(_sample())["features"]) for _ in range(30)}
    assert lengths <= set(range(5, 9)) and len(lengths) > 1
    whole = Truncate(TruncateParams(max_seq_len=100, crop_ratio=None), BuildContext())
    assert whole(_sample())["features"].shape[0] == 10


def test_no_trunc_only_accepts_windows_that_cut_nothing():
    transform = Truncate(TruncateParams(max_seq_len=3, no_trunc=True), BuildContext())
    sample = {
        "features": torch.zeros(10, 1),
        "segments": torch.tensor([[1.0, 2.0], [5.0, 9.0]]),
        "segment_labels": torch.tensor([0, 1]),
    }
    for seed in range(10):
        torch.manual_seed(seed)
        out = transform(dict(sample))
        assert out["segment_labels"].tolist() == [0]
        assert out["segments"].tolist()[0][1] - out["segments"].tolist()[0][0] == 1.0


def test_npy_reads_and_pickles_need_trust(tmp_path):
    write_features(tmp_path / "npy", {"v": 3}, 2)
    write_features(tmp_path / "pkl", {"v": 3}, 2, ext=".pkl")
    assert load_features(tmp_path / "npy" / "v.npy").tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ComponentError, match=r"refusing to unpickle.*trust_pickle"):
        load_features(tmp_path / "pkl" / "v.pkl")
    assert load_features(tmp_path / "pkl" / "v.pkl", trust_pickle=True).shape == (3, 2)
    (tmp_path / "bad.npy").write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(ComponentError):
        load_features(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.zeros(3))
    with pytest.raises(ComponentError, match=r"expected \[T, C\]"):
        load_features(tmp_path / "flat.npy")


def test_pkl_to_npy_converts_trusted_files_only(tmp_path, capsys):
    write_features(tmp_path / "pkl", {"a": 4, "b": 2}, 3, ext=".pkl")
    assert main(["pkl-to-npy", str(tmp_path / "pkl"), str(tmp_path / "out")]) == 1
    assert "trust" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["pkl-to-npy", str(tmp_path / "pkl"), str(tmp_path / "out"), "--trust-pickle"]) == 0
    for name, length in (("a", 4), ("b", 2)):
        array = np.load(tmp_path / "out" / f"{name}.npy", allow_pickle=False)
        assert array.shape == (length, 3)
    with pytest.raises(ComponentError, match=r"no \.pkl file"):
        convert_pickles(tmp_path / "out", tmp_path / "x", trust_pickle=True)


def _dataset(tmp_path, **changes):
    annotations, features = write_tal_fixture(tmp_path)
    params = {"annotations": str(annotations), "features_dir": str(features), **changes}
    return TALFeaturesDataset(TALFeaturesDatasetParams(**params), BuildContext())


def test_tal_features_put_segments_on_the_grid_with_frame_labels(tmp_path):
    data = _dataset(tmp_path)
    assert data.split_names == ("train", "val", "test")
    item = data.split("train")[0]
    video = TAL_VIDEOS["case_a"]
    grid = FeatureGrid(video["fps"], 16, 16)
    expected = grid.to_grid(np.array([s[:2] for s in video["segments"]]))
    assert item["features"].shape == (TAL_LENGTHS["case_a"], 6)
    assert item["segments"].numpy() == pytest.approx(expected, abs=1e-5)
    assert item["step_seconds"] == pytest.approx(0.64) and item["meta"]["video_id"] == "case_a"
    labels = item["frame_labels"].tolist()
    # case_a: [0, 3) class 0, [5, 9) class 2, [9.5, 14.5) class 1, background 3 elsewhere
    assert labels[:3] == [0, 0, 0] and labels[3:5] == [3, 3] and labels[5:9] == [2] * 4
    assert labels[10:15] == [1] * 5 and labels[15:] == [3] * 5
    facts = data.facts()
    assert facts.num_classes == 4 and facts.num_features == 6
    assert facts.extras["ophnet.background_class"] == 3


def test_tal_features_collate_and_ignore_background(tmp_path):
    data = _dataset(tmp_path, background="ignore", multiple_of=8)
    split = data.split("test")
    batch = split_collate(split)([split[0], split[1]])
    assert batch["features"].shape == (2, 16, 6) and batch["lengths"].tolist() == [10, 16]
    assert IGNORE_INDEX in batch["frame_labels"][0, :10].tolist()
    assert data.facts().num_classes == 3


def test_missing_feature_files_are_an_error_or_skipped(tmp_path):
    annotations, features = write_tal_fixture(tmp_path)
    (features / "case_b.npy").unlink()
    params = {"annotations": str(annotations), "features_dir": str(features)}
    with pytest.raises(AnnotationError, match="no feature file for 1 of 5 videos"):
        TALFeaturesDataset(TALFeaturesDatasetParams(**params), BuildContext())
    data = TALFeaturesDataset(
        TALFeaturesDatasetParams(**params, missing_features="skip"), BuildContext()
    )
    assert len(data.split("train")) == 1


def test_input_dim_is_checked_and_pickles_are_refused(tmp_path):
    with pytest.raises(ComponentError, match="width 6, input_dim is 8"):
        _dataset(tmp_path / "a", input_dim=8).facts()
    annotations, features = write_tal_fixture(tmp_path / "b", ext=".pkl")
    params = {"annotations": str(annotations), "features_dir": str(features), "file_ext": ".pkl"}
    data = TALFeaturesDataset(TALFeaturesDatasetParams(**params), BuildContext())
    with pytest.raises(ComponentError, match="refusing to unpickle"):
        data.split("train")[0]
    trusted = TALFeaturesDataset(
        TALFeaturesDatasetParams(**params, trust_pickle=True), BuildContext()
    )
    assert trusted.split("train")[0]["features"].shape == (20, 6)


def test_csv_annotations_with_video_info(tmp_path):
    rows = [
        ("case_a", 0.32, 2.24, "train", 0, 5, 1),
        ("case_a", 3.52, 6.08, "train", 0, 5, 2),
        ("case_d", 0.96, 3.20, "test", 0, 1, 3),
    ]
    csv = write_csv(tmp_path / "loca.csv", LOCA_HEADER, rows)
    info = tmp_path / "info.csv"
    info.write_text("video_id,fps,duration\ncase_a,25,12.8\ncase_d,25,6.4\n")
    features = write_features(tmp_path / "f", {"case_a": 20, "case_d": 10}, 4)
    params = TALFeaturesDatasetParams(
        annotations=str(csv), features_dir=str(features), video_info=str(info), level="operation"
    )
    data = TALFeaturesDataset(params, BuildContext())
    assert data.split_names == ("train", "test")
    assert data.split("train")[0]["segment_labels"].tolist() == [1, 2]
    with pytest.raises(AnnotationError, match="no fps"):
        TALFeaturesDataset(params.model_copy(update={"video_info": None}), BuildContext())
    phase = TALFeaturesDataset(
        params.model_copy(update={"level": "phase", "label_space": "challenge"}), BuildContext()
    )
    # phase 5 twice and phase 1 once are both rare: "Others" (51), then the two rows merge
    assert phase.split("train")[0]["segment_labels"].tolist() == [51]
    assert phase.split("train")[0]["segments"].shape == (1, 2)
