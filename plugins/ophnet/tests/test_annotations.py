"""Acceptance check 1: the CSV loaders (BOM, typed columns, multi-label surgery, bad rows).

Fixtures are written by the tests (``ophnet_files``): a BOM-prefixed ``loca`` CSV with 3 videos,
8 rows and mixed splits, and a surgery CSV with the quoted multi-label field ``"12,3"``.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from asklepios_ophnet.annotations import (
    AnnotationError,
    parse_surgeries,
    primary_surgery,
    read_loca_csv,
    read_surgery_csv,
)
from asklepios_ophnet.datasets import AnnotationsDataset
from asklepios_ophnet.params import AnnotationsDatasetParams
from asklepios_sdk import BuildContext
from asklepios_sdk.sequences import split_collate
from ophnet_files import LOCA_HEADER, LOCA_ROWS, write_csv, write_loca_fixture

TYPES = {
    "video_id": str,
    "start": float,
    "end": float,
    "split": str,
    "surgery_id": int,
    "phase_id": int,
    "operation_id": int,
}


@pytest.fixture
def files(tmp_path):
    return write_loca_fixture(tmp_path)


def test_the_fixture_really_starts_with_a_bom(files):
    loca, surgery = files
    assert loca.read_bytes().startswith(b"\xef\xbb\xbf")
    assert surgery.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(loca, encoding="utf-8") as handle:  # what a BOM-blind reader sees
        assert next(csv.reader(handle))[0] == "\ufeffvideo_id"


def test_loca_csv_has_the_typed_columns_and_the_bom_is_stripped(files):
    table = read_loca_csv(files[0])
    assert list(table.columns) == list(TYPES)
    assert table.columns[0] == "video_id"
    assert len(table) == 8 and table["video_id"].nunique() == 3
    for column, kind in TYPES.items():
        values = table[column].tolist()
        assert all(type(v) is kind for v in values), column
    assert sorted(set(table["split"])) == ["test", "train", "val"]
    expected = [list(row) for row in LOCA_ROWS]
    assert table.values.tolist() == expected


def test_surgery_field_is_a_list_whose_first_id_is_primary(files):
    assert primary_surgery("12,3") == 12
    assert parse_surgeries("12,3") == [12, 3]
    table = read_surgery_csv(files[1])
    assert table["video_id"].tolist() == ["case_0001", "case_0002", "case_0003"]
    assert table["surgeries"].tolist() == [[12, 3], [7], [5, 1, 9]]
    assert table["primary"].tolist() == [12, 7, 5]
    with pytest.raises(AnnotationError, match="not a list of integer ids"):
        parse_surgeries("12;x")


def test_a_row_ending_before_it_starts_is_an_error(tmp_path):
    rows = [*LOCA_ROWS[:4], ("case_0002", 5.0, 4.5, "val", 1, 1, 4)]
    path = write_csv(tmp_path / "bad.csv", LOCA_HEADER, rows)
    with pytest.raises(AnnotationError, match=r"line 6: end 4.5 < start 5.0"):
        read_loca_csv(path)


def test_a_value_that_does_not_parse_names_column_and_line(tmp_path):
    rows = [*LOCA_ROWS[:2], ("case_0001", 9.0, 12.5, "train", 6, "3.5", 12)]
    with pytest.raises(AnnotationError, match=r"line 4.*'phase_id' is '3.5', not an integer"):
        read_loca_csv(write_csv(tmp_path / "bad.csv", LOCA_HEADER, rows))
    with pytest.raises(AnnotationError, match=r"missing"):
        read_loca_csv(write_csv(tmp_path / "cols.csv", "video_id,start,end", [("v", 0, 1)]))


def test_annotations_dataset_gives_one_item_per_video_by_split(files):
    params = AnnotationsDatasetParams(file=str(files[0]), surgery_file=str(files[1]))
    data = AnnotationsDataset(params, BuildContext())
    assert data.split_names == ("train", "val", "test")
    train, val = data.split("train"), data.split("val")
    assert len(train) == 1 and len(val) == 1 and len(data.split("test")) == 1
    item = train[0]
    assert item["segments"].tolist() == [[0.0, 5.0], [6.0, 9.0], [9.0, 12.5]]
    assert item["segment_labels"].tolist() == [2, 2, 3]
    assert item["meta"]["surgeries"] == [12, 3] and item["meta"]["primary_surgery"] == 12
    facts = data.facts()
    assert facts.num_classes == 4 and facts.class_counts == (0, 0, 2, 1)
    batch = split_collate(val)([val[0], train[0]])
    assert batch["mask"].sum(dim=1).tolist() == [3, 3]
    assert batch["segment_labels"].dtype == torch.int64


def test_operation_level_and_split_option(files):
    params = AnnotationsDatasetParams(
        file=str(files[0]), level="operation", splits={"train": ["train", "val"]}
    )
    data = AnnotationsDataset(params, BuildContext())
    assert data.split_names == ("train",)
    labels = np.concatenate([data.split("train")[i]["segment_labels"].numpy() for i in (0, 1)])
    assert labels.tolist() == [10, 11, 12, 3, 4, 4]
    with pytest.raises(AnnotationError, match="no video for the training split"):
        AnnotationsDataset(
            AnnotationsDatasetParams(file=str(files[0]), splits={"train": ["trainval"]}),
            BuildContext(),
        )
