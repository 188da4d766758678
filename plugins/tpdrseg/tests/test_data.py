"""Datasets on fake IDRiD/DDR folders and skimage, the lesion sampler and the joint augmentation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from _tiny import CTX, fake_ddr, fake_idrid
from asklepios_sdk import ComponentError
from asklepios_tpdrseg.augmentations import FundusAug
from asklepios_tpdrseg.datasets import FundusLesions, SkimageFundus
from asklepios_tpdrseg.params import (
    FundusAugParams,
    FundusLesionsParams,
    LesionSamplerParams,
    SkimageFundusParams,
)
from asklepios_tpdrseg.samplers import LesionSampler


def test_idrid_items_per_image_and_lesion_with_sam_preprocessing(tmp_path) -> None:
    root = fake_idrid(tmp_path / "idrid")
    data = FundusLesions(FundusLesionsParams(root=str(root), image_size=64), CTX)
    assert data.split_names == ("train", "test")
    train = data.split("train")
    assert len(train) == 3 * 4  # empty masks stand in for the missing SE files
    sample = train[0]
    assert sample["image"].shape == (3, 64, 64) and sample["mask"].shape == (1, 64, 64)
    assert sample["mask"].dtype == torch.uint8 and int(sample["lesion"]) == 0
    # 30 x 45 -> 43 x 64 then padded: padding is background and SAM's zero
    assert float(sample["image"][:, 43:].abs().max()) == 0 and sample["mask"][0, 43:].sum() == 0
    assert sample["mask"].sum() > 0
    se = [train[i] for i in range(len(train)) if int(train[i]["lesion"]) == 3]
    assert [int(s["mask"].sum() > 0) for s in se] == [0, 1, 0]
    facts = data.facts()
    assert facts.task == "segmentation" and facts.extras["lesions"] == ("MA", "HE", "EX", "SE")
    assert facts.extras["item_images"] == (0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2)
    files = list(data.files("train"))
    assert len(files) == 12 + 3 * 3 + 1  # each item (row) names its image and its mask file
    assert all(p.endswith((".jpg", ".tif")) for _, p in files)
    skip = FundusLesions(
        FundusLesionsParams(root=str(root), image_size=64, missing_mask="skip"), CTX
    )
    assert len(skip.split("train")) == 3 * 3 + 1


def test_idrid_validation_images_are_held_out_by_image(tmp_path) -> None:
    root = fake_idrid(tmp_path / "idrid", train=5)
    params = FundusLesionsParams(root=str(root), image_size=32, val_fraction=0.4, lesions=["MA"])
    data = FundusLesions(params, CTX)
    assert data.split_names == ("train", "val", "test")
    assert (len(data.split("train")), len(data.split("val"))) == (3, 2)
    train_images = set(data.split("train").images)
    assert not train_images & set(data.split("val").images)


def test_ddr_layout_and_errors(tmp_path) -> None:
    root = fake_ddr(tmp_path / "ddr")
    data = FundusLesions(FundusLesionsParams(root=str(root), layout="ddr", image_size=32), CTX)
    assert data.split_names == ("train", "val", "test")
    assert len(data.split("val")) == 4 and data.split("val")[0]["mask"].sum() > 0
    with pytest.raises(ComponentError, match="own validation"):
        FundusLesions(FundusLesionsParams(root=str(root), layout="ddr", val_fraction=0.2), CTX)
    with pytest.raises(ComponentError, match="missing"):
        FundusLesions(FundusLesionsParams(root=str(tmp_path), layout="idrid"), CTX)


def test_skimage_demo_tiles_with_pseudo_masks() -> None:
    data = SkimageFundus(SkimageFundusParams(image_size=32, tiles=2), CTX)
    assert data.split_names == ("train", "val", "test")
    assert [len(data.split(n)) for n in data.split_names] == [4, 2, 4]
    masks = torch.stack([data.split("train")[i]["mask"] for i in range(4)])
    assert masks.shape == (4, 1, 32, 32) and 0 < float(masks.float().mean()) < 0.5


def test_the_sampler_draws_one_lesion_per_image_per_epoch() -> None:
    sampler = LesionSampler(LesionSamplerParams(), CTX)
    images = CTX.data.extras["item_images"]
    assert len(sampler) == 4
    seen: Counter[int] = Counter()
    for epoch in range(60):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(images[i] for i in order) == [0, 1, 2, 3]
        seen.update(order)
    assert set(seen) == set(range(8))  # every item comes up over the epochs
    assert seen[4] == 60  # image 2 has one lesion only
    weighted = LesionSampler(LesionSamplerParams(lesion_weights={"MA": 1.0, "HE": 0.0}), CTX)
    lesions = CTX.data.extras["item_lesions"]
    for epoch in range(5):
        weighted.set_epoch(epoch)
        assert all(lesions[i] != 1 for i in weighted)
    with pytest.raises(ComponentError, match="not among"):
        LesionSampler(LesionSamplerParams(lesion_weights={"OD": 1.0}), CTX)


def test_fundus_aug_moves_image_and_mask_together() -> None:
    image = torch.randn(3, 16, 16)
    mask = (image[:1] > 0.5).to(torch.uint8)
    for rotation in ("right_angles", "uniform", "none"):
        aug = FundusAug(FundusAugParams(rotation=rotation, degrees=90), CTX)
        for seed in range(6):
            torch.manual_seed(seed)
            out = aug({"image": image, "mask": mask, "lesion": torch.tensor(1)})
            assert out["image"].shape == (3, 16, 16) and out["mask"].dtype == torch.uint8
            covered = out["image"][0] != 0  # a uniform rotation fills uncovered pixels with 0
            np.testing.assert_array_equal(
                (out["image"][0] > 0.5)[covered].numpy(), out["mask"][0].bool()[covered].numpy()
            )
            assert int(out["lesion"]) == 1
