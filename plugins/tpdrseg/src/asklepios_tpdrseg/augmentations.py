"""Augmentation ``tpdrseg.fundus_aug``: flips and rotations of image and mask together.

Built on torchvision.transforms.v2 with the mask as a :class:`torchvision.tv_tensors.Mask`, so one
random draw moves both (nearest-neighbour for the mask). The SAM input is already normalised, so
the area a uniform rotation uncovers is filled with 0 in the image (SAM's padding value, the mean
colour) and in the mask (background). Right-angle rotations lose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from asklepios_sdk import BuildContext, SampleTransform
from torchvision import tv_tensors
from torchvision.transforms import v2

from asklepios_tpdrseg.params import FundusAugParams

__all__ = ["FundusAug"]


class FundusAug(SampleTransform):
    """Flip and rotate the fundus image and its lesion mask with one random draw."""

    def __init__(self, params: FundusAugParams, ctx: BuildContext) -> None:
        self.params = params
        steps: list[Any] = [
            v2.RandomHorizontalFlip(params.hflip),
            v2.RandomVerticalFlip(params.vflip),
        ]
        if params.rotation == "uniform":
            steps.append(v2.RandomRotation(params.degrees, fill=0))
        self.transform = v2.Compose(steps)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = tv_tensors.Image(sample["image"])
        mask = tv_tensors.Mask(sample["mask"]) if "mask" in sample else None
        if mask is None:
            image = self.transform(image)
        else:
            image, mask = self.transform(image, mask)
        if self.params.rotation == "right_angles":
            turns = int(torch.randint(0, 4, ()).item())
            if image.shape[-1] != image.shape[-2]:
                turns = 2 * (turns % 2)  # a quarter turn would change a non-square shape
            image = torch.rot90(image, turns, dims=(-2, -1))
            mask = None if mask is None else torch.rot90(mask, turns, dims=(-2, -1))
        out = dict(sample)
        out["image"] = image.as_subclass(torch.Tensor)
        if mask is not None:
            out["mask"] = mask.as_subclass(torch.Tensor)
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return ``shapes`` unchanged (fundus inputs are square, so rotations keep them)."""
        return dict(shapes)

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return a square image with a lesion mask and lesion index."""
        gen = torch.Generator().manual_seed(0)
        return {
            "image": torch.randn(3, 16, 16, generator=gen),
            "mask": (torch.rand(1, 16, 16, generator=gen) > 0.8).to(torch.uint8),
            "lesion": torch.tensor(0),
        }
