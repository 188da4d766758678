"""MONICA's per-sample presets and the two-view transform."""

from __future__ import annotations

import pytest
import torch
from asklepios_longtail.params import PresetParams, TwoViewParams
from asklepios_longtail.transforms import OPS, Preset, TwoView, UDARandAugment
from torchvision.transforms.v2 import functional as TF

IMAGE = torch.rand(3, 30, 30, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("preset", ["strong", "weak", "randaugment", "crop", "resize"])
def test_presets_shape_and_seed(preset):
    transform = Preset(PresetParams(preset=preset, size=16), None)
    torch.manual_seed(1)
    first = transform({"image": IMAGE, "label": 0})["image"]
    torch.manual_seed(1)
    again = transform({"image": IMAGE, "label": 0})["image"]
    assert first.shape == (3, 16, 16) and torch.equal(first, again)


def test_eval_presets_are_deterministic_and_normalised():
    crop = Preset(PresetParams(preset="crop", size=16, margin=4), None)
    expected = TF.center_crop(TF.resize(IMAGE, [20, 20], antialias=True), [16, 16])
    expected = TF.normalize(expected.clamp(0, 1), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert torch.allclose(crop({"image": IMAGE})["image"], expected, atol=1e-6)
    plain = Preset(PresetParams(preset="resize", size=30, normalize=False), None)
    assert torch.allclose(plain({"image": IMAGE})["image"], IMAGE, atol=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_every_randaugment_op_runs(op):
    policy = UDARandAugment()
    image = (IMAGE * 255).to(torch.uint8)
    out = policy.apply(image, op, 0.9)
    assert out.shape == image.shape and out.dtype == torch.uint8


def test_randaugment_changes_images_sometimes():
    policy = UDARandAugment()
    torch.manual_seed(0)
    changed = sum(not torch.allclose(policy(IMAGE), IMAGE, atol=1 / 255) for _ in range(40))
    assert 10 < changed < 40  # each of two ops applies with probability 0.5


def test_two_view_returns_two_different_views():
    transform = TwoView(TwoViewParams(preset="strong", size=16), None)
    torch.manual_seed(0)
    out = transform({"image": IMAGE, "label": 1})
    assert out["image"].shape == out["image_view2"].shape == (3, 16, 16)
    assert not torch.equal(out["image"], out["image_view2"])
