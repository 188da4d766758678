"""Segmentation samples: the built-in transforms move ``image`` and ``mask`` together."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from asklepios.builtins import augmentations as aug
from asklepios.builtins import params
from asklepios_sdk import BuildContext, DataFacts

SEGMENTATION = BuildContext(
    data=DataFacts(task="segmentation", num_classes=3, in_channels=3, image_size=(40, 48))
)


def _sample(seed: int = 0) -> dict:
    """Return an image whose every channel is its mask (blocky labels 0, 1, 2) as floats."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 3, (5, 6), generator=gen)
    mask = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)
    return {"image": mask.float().expand(3, -1, -1).clone(), "mask": mask, "label": 1}


EXACT = [
    aug.HorizontalFlip(params.HorizontalFlipParams(p=1.0)),
    aug.VerticalFlip(params.VerticalFlipParams(p=1.0)),
    aug.Rotation(params.RotationParams(degrees=40)),
    aug.CenterCrop(params.CenterCropParams(size=[12, 10])),
]


@pytest.mark.parametrize("transform", EXACT, ids=lambda t: type(t).__name__)
def test_geometric_transforms_move_image_and_mask_with_one_draw(transform) -> None:
    for seed in range(3):
        torch.manual_seed(seed)
        out = pickle.loads(pickle.dumps(transform))(_sample(seed))
        assert type(out["image"]) is torch.Tensor and type(out["mask"]) is torch.Tensor
        assert out["mask"].dtype == torch.int64 and out["label"] == 1
        # nearest-neighbour geometry on both: the image channel still equals the mask
        torch.testing.assert_close(out["image"][0], out["mask"].float())


def test_a_rotation_fills_the_mask_with_background_and_the_image_with_fill() -> None:
    sample = {"image": torch.ones(3, 20, 20), "mask": torch.ones(20, 20, dtype=torch.uint8)}
    rotation = aug.Rotation(params.RotationParams(degrees=45, fill=0.5))
    uncovered_somewhere = False
    for seed in range(5):
        torch.manual_seed(seed)
        out = rotation(sample)
        uncovered = out["mask"] == 0
        uncovered_somewhere |= bool(uncovered.any())
        assert out["mask"].dtype == torch.uint8
        assert torch.all(out["image"][:, uncovered] == 0.5)
        assert torch.all(out["image"][:, ~uncovered] == 1.0)
    assert uncovered_somewhere


@pytest.mark.parametrize(
    "transform",
    [
        aug.Resize(params.ResizeParams(size=[10, 12])),
        aug.RandomResizedCrop(params.RandomResizedCropParams(size=12, scale=(0.3, 1.0))),
    ],
    ids=lambda t: type(t).__name__,
)
def test_resizing_keeps_labels_and_samples_the_same_place_as_the_image(transform) -> None:
    mask = _sample()["mask"]
    rows, cols = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    # a coordinate image: bilinear resampling of a linear ramp returns the sampled position
    sample = {"image": torch.stack([rows, cols, torch.zeros_like(rows)]), "mask": mask}
    shapes = {"image": (3, 40, 48), "mask": (40, 48)}
    for seed in range(4):
        torch.manual_seed(seed)
        out = transform(sample)
        declared = transform.output_shapes(shapes)
        assert tuple(out["image"].shape) == declared["image"]
        assert tuple(out["mask"].shape) == declared["mask"]
        # nearest neighbours: no label is invented by interpolation
        assert set(out["mask"].unique().tolist()) <= {0, 1, 2}
        r = out["image"][0].round().long().clamp(0, 39)
        c = out["image"][1].round().long().clamp(0, 47)
        agree = (mask[r, c] == out["mask"]).float().mean()
        # torch's nearest rounds sample positions down, so block borders may shift by a pixel;
        # a crop taken elsewhere agrees on about a third of the pixels (three labels)
        assert agree > 0.75, f"seed {seed}: the mask was cropped elsewhere than the image"


def test_photometric_transforms_leave_the_mask_alone() -> None:
    sample = _sample()
    sample["image"] = sample["image"] / 2
    for transform in (
        aug.ColorJitter(params.ColorJitterParams(brightness=0.5, contrast=0.5)),
        aug.Normalize(params.NormalizeParams(mean=[0.5] * 3, std=[0.25] * 3)),
    ):
        out = transform(sample)
        assert torch.equal(out["mask"], sample["mask"]) and out["mask"].dtype == torch.int64
        assert not torch.equal(out["image"], sample["image"])
    norm = aug.Normalize(params.NormalizeParams(mean=[0.5] * 3, std=[0.25] * 3))(sample)
    torch.testing.assert_close(norm["image"], (sample["image"] - 0.5) / 0.25)


def test_to_tensor_converts_array_and_pil_masks_without_scaling() -> None:
    from PIL import Image

    image = np.full((4, 5, 3), 255, dtype=np.uint8)
    mask = np.array([[0, 1, 2, 0, 1]] * 4, dtype=np.uint8)
    for given in (mask, Image.fromarray(mask)):
        out = aug.ToTensor(params.ToTensorParams())({"image": image, "mask": given})
        assert out["image"].dtype == torch.float32 and float(out["image"].max()) == 1.0
        assert out["mask"].dtype == torch.uint8 and out["mask"].shape == (4, 5)
        assert torch.equal(out["mask"], torch.from_numpy(mask))


def test_pil_images_travel_with_tensor_masks() -> None:
    from PIL import Image

    array = np.zeros((8, 6, 3), dtype=np.uint8)
    array[:, :3] = 255
    mask = torch.zeros(8, 6, dtype=torch.int64)
    mask[:, :3] = 1
    out = aug.HorizontalFlip(params.HorizontalFlipParams(p=1.0))(
        {"image": Image.fromarray(array), "mask": mask}
    )
    assert isinstance(out["image"], Image.Image)
    assert np.asarray(out["image"])[0, -1, 0] == 255 and torch.equal(out["mask"], mask.flip(-1))


def test_the_kit_example_sample_of_a_segmentation_task_has_a_mask() -> None:
    transform = aug.VerticalFlip(params.VerticalFlipParams(p=1.0))
    sample = transform.example_sample(SEGMENTATION)
    assert sample["mask"].shape == (40, 48)
    out = transform(sample)
    assert torch.equal(out["mask"], sample["mask"].flip(-2))
