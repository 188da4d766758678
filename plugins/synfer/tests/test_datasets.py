"""Spec §5.4: the FEText loader; the digits stand-in and the generation requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.testing import host_components
from asklepios_synfer.datasets import (
    EMFACS_PROTOTYPES,
    OPENGRAPHAU_ORDER,
    DigitsFEText,
    FEText,
    GenerationRequests,
    write_fetext,
)
from asklepios_synfer.params import (
    AFFECTNET8,
    DigitsFETextParams,
    FETextParams,
    GenerationRequestsParams,
)
from PIL import Image

AU_A = " ".join(["1", "0"] * 20 + ["1"])  # 41 values


def _source(folder, au_c=AU_A):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        Image.fromarray(np.full((6, 5, 3), 60 * i, dtype=np.uint8)).save(folder / name)
    captions = [{"a.png": "a smiling face"}, {"c.png": "a surprised face"}]  # b: no caption
    labels = {"a.png": AU_A, "b.png": " ".join(["0"] * 41), "c.png": au_c}
    (folder / "captions.json").write_text(json.dumps(captions))
    (folder / "fau_labels.json").write_text(json.dumps(labels))
    return folder


def test_fetext_items_are_image_caption_and_au(tmp_path) -> None:
    data = FEText(FETextParams(roots=[str(_source(tmp_path))], image_size=8), BuildContext())
    split = data.split("train")
    assert len(split) == 3
    first = split[0]
    assert first["image"].shape == (3, 8, 8) and first["image"].dtype == torch.float32
    assert first["text"] == "a smiling face" and first["meta"]["name"] == "a.png"
    au = first["meta"]["au"]
    assert au.shape == (41,) and au.dtype == torch.float32
    assert au.tolist() == [float(v) for v in AU_A.split()]
    assert split[1]["text"] == ""  # no caption: the empty string
    assert data.facts().image_size == (8, 8)


def test_an_image_without_au_labels_is_skipped(tmp_path) -> None:
    folder = _source(tmp_path)
    labels = json.loads((folder / "fau_labels.json").read_text())
    del labels["b.png"]
    (folder / "fau_labels.json").write_text(json.dumps(labels))
    data = FEText(FETextParams(roots=[str(folder)], image_size=8), BuildContext())
    assert [s["meta"]["name"] for s in data.split("train")] == ["a.png", "c.png"]


def test_a_wrong_length_au_string_is_an_error_naming_the_image(tmp_path) -> None:
    folder = _source(tmp_path, au_c="1 0 1")
    with pytest.raises(ComponentError, match=r"c\.png.*3 values, expected 41"):
        FEText(FETextParams(roots=[str(folder)]), BuildContext())


def test_text_dropout_one_gives_empty_captions(tmp_path) -> None:
    params = FETextParams(roots=[str(_source(tmp_path))], image_size=8, text_dropout=1.0)
    split = FEText(params, BuildContext()).split("train")
    assert [split[i]["text"] for i in range(3)] == ["", "", ""]


def test_au_probabilities_are_thresholded(tmp_path) -> None:
    folder = _source(tmp_path)
    labels = json.loads((folder / "fau_labels.json").read_text())
    labels["a.png"] = " ".join(["0.7", "0.2"] * 20 + ["0.5"])
    (folder / "fau_labels.json").write_text(json.dumps(labels))
    data = FEText(FETextParams(roots=[str(folder)], image_size=8), BuildContext())
    assert data.split("train")[0]["meta"]["au"].tolist() == [float(v) for v in AU_A.split()]


def test_digits_written_as_fetext_read_back_like_the_in_memory_stand_in(tmp_path) -> None:
    params = DigitsFETextParams(classes=3, per_class=4)
    folder = write_fetext(tmp_path / "digits", params)
    on_disk = FEText(FETextParams(roots=[str(folder)], image_size=16), BuildContext())
    memory = DigitsFEText(params, BuildContext())
    assert len(on_disk.split("train")) == len(memory.split("train")) == 12
    assert on_disk.labels("train").tolist() == memory.labels("train").tolist()
    a, b = on_disk.split("train")[5], memory.split("train")[5]
    assert a["text"] == b["text"] and torch.equal(a["meta"]["au"], b["meta"]["au"])
    assert torch.allclose(a["image"], b["image"], atol=1 / 255)
    per_class = {}
    for i in range(12):
        sample = memory.split("train")[i]
        per_class.setdefault(sample["label"], []).append(sample["meta"]["au"])
    for vectors in per_class.values():  # one AU pattern per class, a few bits flipped
        assert (torch.stack(vectors).mean(0).round() != vectors[0]).float().mean() < 0.2


def test_requests_are_balanced_with_prompts_prototypes_and_layouts() -> None:
    ctx = BuildContext(seed=3, components=host_components)
    params = GenerationRequestsParams(
        count=10, layouts={"type": "synfer.digits_fetext", "classes": 3, "per_class": 4}
    )
    requests = GenerationRequests(params, ctx)
    split = requests.split("train")
    assert [split[i]["label"] for i in range(10)] == [i % 8 for i in range(10)]
    assert split[1]["text"] == "a photo of a face with a happy expression"
    happy = split[1]["meta"]["au"]
    on = {OPENGRAPHAU_ORDER[i] for i in torch.nonzero(happy).flatten().tolist()}
    assert on == set(EMFACS_PROTOTYPES["happy"]) == {"AU6", "AU12"}
    assert split[0]["meta"]["au"].sum() == 0  # neutral
    assert split[0]["image"].shape == (3, 16, 16)
    again = GenerationRequests(params, ctx).split("train")
    assert all(torch.equal(split[i]["image"], again[i]["image"]) for i in range(10))
    assert requests.facts().class_names == AFFECTNET8


def test_class_mean_prototypes_come_from_labelled_layouts() -> None:
    ctx = BuildContext(components=host_components)
    params = GenerationRequestsParams(
        count=3,
        class_names=["zero", "one", "two"],
        au_source="class_mean",
        layouts={"type": "synfer.digits_fetext", "classes": 3, "per_class": 6, "au_flip": 0.0},
    )
    requests = GenerationRequests(params, ctx)
    layouts = DigitsFEText(DigitsFETextParams(classes=3, per_class=6, au_flip=0.0), ctx)
    for k in range(3):
        first = next(
            layouts.split("train")[i] for i in range(18) if layouts.split("train")[i]["label"] == k
        )
        assert torch.equal(requests.prototypes[k], first["meta"]["au"])
