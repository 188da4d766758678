"""Acceptance checks 2 and 3: the challenge remap and merge, and the CSV -> JSON converter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from asklepios_ophnet.annotations import AnnotationError, VideoInfo, read_loca_csv
from asklepios_ophnet.cli import main
from asklepios_ophnet.datasets import AnnotationsDataset, ChallengeLabels
from asklepios_ophnet.labels import (
    challenge_remap,
    merge_consecutive_phases,
    remap_rare_labels,
    to_activitynet,
)
from asklepios_ophnet.params import AnnotationsDatasetParams, ChallengeLabelsParams
from asklepios_sdk import BuildContext
from ophnet_files import LOCA_HEADER, write_csv, write_loca_fixture


def _loca_all(tmp_path):
    """Phase 7 occurs 3 times, phases 0/1/2 at least 15 times; operation 9 occurs twice."""
    rows, t = [], 0.0
    phases = [0] * 15 + [1] * 16 + [2] * 20 + [7] * 3
    rng = np.random.default_rng(0)
    order = rng.permutation(len(phases))
    for i, index in enumerate(order):
        video = f"case_{i % 6:04d}"
        operation = 9 if i in (4, 11) else 20 + (i % 2)
        split = ("train", "val", "test")[i % 6 // 2]
        rows.append((video, round(t, 2), round(t + 1.5, 2), split, 0, phases[index], operation))
        t += 2.0
    rows.sort(key=lambda r: (r[0], r[1]))
    return read_loca_csv(write_csv(tmp_path / "loca_all.csv", LOCA_HEADER, rows)), phases


def test_rare_labels_become_others_and_the_rest_stay(tmp_path):
    table, _ = _loca_all(tmp_path)
    out = challenge_remap(table, min_count=15, other_phase=51, other_operation=106)
    before, after = table["phase_id"].to_numpy(), out["phase_id"].to_numpy()
    assert (after[before == 7] == 51).all() and (before == 7).sum() == 3
    assert (after[before != 7] == before[before != 7]).all()
    ops_before, ops_after = table["operation_id"].to_numpy(), out["operation_id"].to_numpy()
    assert (ops_after[ops_before == 9] == 106).all()
    # operations 20 and 21 occur 26 and 26 times: kept
    assert (ops_after[ops_before != 9] == ops_before[ops_before != 9]).all()
    assert out[["video_id", "start", "end", "split", "surgery_id"]].equals(
        table[["video_id", "start", "end", "split", "surgery_id"]]
    )


def test_remap_counts_over_the_given_rows():
    labels = np.array([3, 3, 5, 5, 5])
    assert remap_rare_labels(labels, 3, 99).tolist() == [99, 99, 5, 5, 5]
    assert remap_rare_labels(labels, 2, 99).tolist() == [3, 3, 5, 5, 5]


MERGE_ROWS = [
    ("v1", 0.0, 5.0, "train", 4, 2, 10),
    ("v1", 6.0, 9.0, "train", 5, 2, 11),
    ("v1", 9.0, 12.0, "train", 6, 3, 12),
    ("v1", 12.0, 14.0, "train", 7, 2, 13),
]


def test_consecutive_phases_merge_whatever_the_gap(tmp_path):
    table = read_loca_csv(write_csv(tmp_path / "merge.csv", LOCA_HEADER, MERGE_ROWS))
    merged = merge_consecutive_phases(table)
    assert list(merged.columns) == ["video_id", "start", "end", "split", "surgery_id", "phase_id"]
    assert merged.values.tolist() == [
        ["v1", 0.0, 9.0, "train", 4, 2],  # [0,5] and [6,9] merge across the gap; first surgery
        ["v1", 9.0, 12.0, "train", 6, 3],
        ["v1", 12.0, 14.0, "train", 7, 2],  # a return to phase 2 starts a new row
    ]


def test_merge_never_crosses_videos(tmp_path):
    rows = [MERGE_ROWS[0], ("v2", 0.0, 1.0, "val", 1, 2, 3), ("v2", 1.0, 2.0, "val", 2, 2, 3)]
    merged = merge_consecutive_phases(
        read_loca_csv(write_csv(tmp_path / "m.csv", LOCA_HEADER, rows))
    )
    assert merged[["video_id", "start", "end", "surgery_id"]].values.tolist() == [
        ["v1", 0.0, 5.0, 4],
        ["v2", 0.0, 2.0, 1],
    ]


def test_the_challenge_wrapper_gives_the_challenge_files_labels(tmp_path):
    table, _ = _loca_all(tmp_path)
    path = tmp_path / "loca_all.csv"
    plain = AnnotationsDataset(AnnotationsDatasetParams(file=str(path)), BuildContext())
    wrapped = ChallengeLabels(ChallengeLabelsParams(), BuildContext()).wrap(plain)
    direct = AnnotationsDataset(
        AnnotationsDatasetParams(file=str(path), label_space="challenge"), BuildContext()
    )
    expected = merge_consecutive_phases(challenge_remap(table))
    for name in ("train", "val", "test"):
        got = [wrapped.split(name)[i] for i in range(len(wrapped.split(name)))]
        ref = [direct.split(name)[i] for i in range(len(direct.split(name)))]
        for a, b in zip(got, ref, strict=True):
            assert a["segments"].tolist() == b["segments"].tolist()
            assert a["segment_labels"].tolist() == b["segment_labels"].tolist()
    rows = sum(
        len(wrapped.split(n)[i]["segment_labels"])
        for n in ("train", "val", "test")
        for i in range(len(wrapped.split(n)))
    )
    assert rows == len(expected)
    assert wrapped.facts().num_classes == 52 == direct.facts().num_classes


def test_converter_writes_activitynet_json_one_segment_per_row(tmp_path):
    loca, _ = write_loca_fixture(tmp_path)
    table = read_loca_csv(loca)
    info = {"case_0001": VideoInfo(30.0, 13.0), "case_0002": VideoInfo(25.0, 8.5)}
    document = to_activitynet(table, "phase", info, default_fps=25.0)
    assert set(document) == {"version", "database"} and document["version"] == "OphNet2024"
    database = document["database"]
    assert set(database) == set(table["video_id"])
    total = 0
    for video_id, entry in database.items():
        assert set(entry) == {"duration", "fps", "subset", "annotations"}
        rows = table[table["video_id"] == video_id]
        assert entry["subset"] == rows["split"].iloc[0]
        for annotation, (_, row) in zip(entry["annotations"], rows.iterrows(), strict=True):
            assert set(annotation) == {"label", "label_id", "segment"}
            assert annotation["label"] == str(annotation["label_id"])
            assert annotation["label_id"] == row["phase_id"]
            assert annotation["segment"] == [row["start"], row["end"]]
        total += len(entry["annotations"])
    assert total == len(table)
    assert database["case_0001"]["fps"] == 30.0 and database["case_0001"]["duration"] == 13.0
    assert database["case_0003"]["fps"] == 25.0 and database["case_0003"]["duration"] == 4.4
    with pytest.raises(AnnotationError, match="no fps/duration"):
        to_activitynet(table, "phase", info)


def test_cli_writes_the_challenge_csvs_and_the_json(tmp_path, capsys):
    table, _ = _loca_all(tmp_path)
    assert main(["challenge", str(tmp_path / "loca_all.csv"), str(tmp_path / "out")]) == 0
    challenge = read_loca_csv(tmp_path / "out" / "OphNet2024_loca_challenge.csv")
    assert challenge.equals(challenge_remap(table))
    merged = pd.read_csv(tmp_path / "out" / "OphNet2024_loca_challenge_phase.csv")
    assert merged.values.tolist() == merge_consecutive_phases(challenge).values.tolist()
    info = tmp_path / "info.csv"
    info.write_text("video_id,fps,duration\n" + "".join(f"case_{i:04d},25,120\n" for i in range(6)))
    out = tmp_path / "phase.json"
    code = main(
        [
            "convert",
            str(tmp_path / "out" / "OphNet2024_loca_challenge_phase.csv"),
            str(out),
            "--video-info",
            str(info),
        ]
    )
    assert code == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    assert sum(len(v["annotations"]) for v in document["database"].values()) == len(merged)
    assert main(["convert", str(tmp_path / "loca_all.csv"), str(out), "--level", "operation"]) == 1
    assert "no fps/duration" in capsys.readouterr().err
