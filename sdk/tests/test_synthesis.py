"""The generated-dataset contract of ``asklepios_sdk.synthesis``: items, folders, reading back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.synthesis import (
    GeneratedSplit,
    GenerationPending,
    check_item,
    generated_dir,
    item_path,
    read_generated,
)
from PIL import Image


def _folder(tmp_path, complete=True):
    records = []
    for index in range(3):
        path = item_path(index)
        (tmp_path / "images").mkdir(exist_ok=True)
        pixels = np.full((4, 5, 3), 40 * index, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / path)
        records.append(
            {"index": index, "path": path, "seed": 7, "label": index % 2, "au": [0, 1], "t": "x"}
        )
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = {"complete": complete, "items": 3}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_check_item_accepts_the_contract_and_names_each_breach() -> None:
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    check_item({"image": image, "label": 2, "caption": "a", "au": [0, 1]}, "here")
    check_item({"image": None, "score": 0.5}, "here")
    with pytest.raises(ComponentError, match="uint8"):
        check_item({"image": image.float()}, "here")
    with pytest.raises(ComponentError, match="channels"):
        check_item({"image": torch.zeros(2, 4, 4, dtype=torch.uint8)}, "here")
    with pytest.raises(ComponentError, match="'label' must be an int"):
        check_item({"label": True}, "here")
    with pytest.raises(ComponentError, match=r"may not set \['index'\]"):
        check_item({"index": 3}, "here")
    with pytest.raises(ComponentError, match="not a JSON value"):
        check_item({"au": torch.zeros(2)}, "here")
    with pytest.raises(ComponentError, match="not a JSON value"):
        check_item({"score": float("nan")}, "here")


def test_generated_dir_finds_a_stage_or_a_path_and_says_what_is_missing(tmp_path) -> None:
    folder = _folder(tmp_path)
    ctx = BuildContext(stage="train", extras={"generated": {"paint": str(folder)}})
    assert generated_dir(ctx, stage="paint") == folder
    assert generated_dir(BuildContext(), path=str(folder)) == folder
    with pytest.raises(ComponentError, match="exactly one"):
        generated_dir(ctx, stage="paint", path=str(folder))
    with pytest.raises(ComponentError, match="stage 'other' has not generated"):
        generated_dir(ctx, stage="other")
    pending = BuildContext(extras={"generated": {"paint": None}})
    with pytest.raises(GenerationPending):
        generated_dir(pending, stage="paint")
    with pytest.raises(ComponentError, match=r"no manifest\.json"):
        generated_dir(BuildContext(), path=str(tmp_path / "nowhere"))
    (folder / "manifest.json").write_text(json.dumps({"complete": False, "items": 3}))
    with pytest.raises(ComponentError, match="not complete"):
        read_generated(folder)


def test_a_generated_split_serves_images_labels_and_collatable_meta(tmp_path) -> None:
    folder = _folder(tmp_path)
    split = GeneratedSplit(folder)
    sample = split[2]
    assert sample["image"].shape == (3, 4, 5) and sample["image"].dtype == torch.float32
    assert torch.allclose(sample["image"], torch.full((3, 4, 5), 80 / 255))
    assert sample["label"] == 0 and sample["index"] == 2
    assert sample["meta"]["t"] == "x" and sample["meta"]["au"].tolist() == [0.0, 1.0]
    batch = torch.utils.data.default_collate([split[0], split[1]])
    assert batch["meta"]["au"].shape == (2, 2)
    relabelled = GeneratedSplit(folder, labels=[1, 1, 1], soft_labels=[[0.2, 0.8]] * 3)
    assert relabelled[0]["label"] == 1 and relabelled[0]["soft_label"].tolist() == pytest.approx(
        [0.2, 0.8]
    )
