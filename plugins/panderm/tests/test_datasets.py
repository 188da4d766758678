"""panderm.derm_csv: PanDerm's CSV format (§5), binary labels, image_key, masks, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _tiny import write_digits_csv
from asklepios_panderm.datasets import DermCsv
from asklepios_panderm.params import DermCsvParams
from asklepios_sdk import BuildContext
from PIL import Image

CTX = BuildContext()


def _write(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_reads_splits_labels_and_facts(tmp_path: Path) -> None:
    path = write_digits_csv(tmp_path / "digits", per_split=(12, 4, 5))
    data = DermCsv(DermCsvParams(csv=str(path)), CTX)
    assert data.split_names == ("train", "val", "test")
    facts = data.facts()
    assert facts.num_classes == 3 and facts.num_samples == 12 and sum(facts.class_counts) == 12
    item = data.split("test")[2]
    assert item["image"].mode == "RGB" and item["image"].size == (32, 32)
    assert item["index"] == 2 and item["meta"]["filename"].endswith(".png")
    assert int(data.labels("test")[2]) == item["label"]  # type: ignore[index]


def test_binary_label_image_key_and_string_concatenated_root(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4), (10, 20, 30)).save(images / name)
    rows = [
        {"path": "a.png", "split": "train", "label": 4, "binary_label": 1},
        {"path": "b.png", "split": "train", "label": 2, "binary_label": 0},
        {"path": "b.png", "split": "test", "label": 2, "binary_label": 0},
    ]
    path = _write(tmp_path / "set.csv", rows, ["path", "split", "label", "binary_label"])
    params = DermCsvParams(csv=str(path), root=str(images), image_key="path", binary=True)
    data = DermCsv(params, CTX)
    assert data.facts().num_classes == 2 and data.labels("train").tolist() == [1, 0]  # type: ignore[union-attr]
    assert data.split_names == ("train", "test")
    quirk = DermCsv(params.model_copy(update={"root": str(images) + "/", "concat_root": True}), CTX)
    assert quirk.split("train")[0]["image"].getpixel((0, 0)) == (10, 20, 30)
    broken = DermCsv(params.model_copy(update={"concat_root": True}), CTX)  # root lacks the '/'
    with pytest.raises(Exception, match=r"row 0.*cannot open"):
        broken.split("train")[0]


def test_segmentation_rows_carry_masks(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "i.png")
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:5, 2:5] = 255
    Image.fromarray(mask).save(tmp_path / "i_segmentation.png")
    rows = [{"image": "i.png", "mask": "i_segmentation.png", "split": s} for s in ("train", "val")]
    path = _write(tmp_path / "seg.csv", rows, ["image", "mask", "split"])
    data = DermCsv(DermCsvParams(csv=str(path), mask_key="mask"), CTX)
    assert data.facts().task == "segmentation" and data.facts().num_classes == 2
    assert data.labels("train") is None
    assert np.array_equal(np.asarray(data.split("val")[0]["mask"]), mask)


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.csv", [{"image": "x", "split": "train"}], ["image", "split"])
    with pytest.raises(Exception, match=r"bad\.csv.*missing column.*'label'"):
        DermCsv(DermCsvParams(csv=str(bad)), CTX)
    rows = [{"image": "x", "split": "training", "label": 0}]
    odd = _write(tmp_path / "odd.csv", rows, ["image", "split", "label"])
    with pytest.raises(Exception, match="split 'training'"):
        DermCsv(DermCsvParams(csv=str(odd)), CTX)
    rows = [{"image": "x", "split": "train", "label": "nevus"}]
    named = _write(tmp_path / "named.csv", rows, ["image", "split", "label"])
    with pytest.raises(Exception, match="not an integer class id"):
        DermCsv(DermCsvParams(csv=str(named)), CTX)
