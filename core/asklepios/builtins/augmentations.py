"""Built-in per-sample image augmentations on torchvision.transforms.v2.

Each transform changes ``sample["image"]`` (a ``C x H x W`` tensor, a PIL image or an ``H x W
[x C]`` array) and, for segmentation samples, ``sample["mask"]`` with it: the mask (an integer or
boolean ``H x W``, ``1 x H x W`` or ``K x H x W`` tensor, array or PIL image) travels through the
same call as a :class:`torchvision.tv_tensors.Mask`, so geometric transforms (resize, crops, flips,
rotation) move image and mask with the same random draw (masks resized with nearest neighbours,
rotated with fill 0) and photometric ones (colour jitter, normalisation) leave the mask alone.
Other keys are left alone. They run in DataLoader workers, pickle, and draw randomness from
torch's global generator, which the engine seeds per worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, SampleTransform
from torchvision import tv_tensors
from torchvision.transforms import v2

from asklepios.builtins.params import (
    CenterCropParams,
    ColorJitterParams,
    HorizontalFlipParams,
    NormalizeParams,
    RandomResizedCropParams,
    ResizeParams,
    RotationParams,
    ToTensorParams,
    VerticalFlipParams,
)

__all__ = [
    "CenterCrop",
    "ColorJitter",
    "HorizontalFlip",
    "Normalize",
    "RandomResizedCrop",
    "Resize",
    "Rotation",
    "ToTensor",
    "VerticalFlip",
]


def _as_mask(mask: Any) -> tv_tensors.Mask:
    """Return ``mask`` (tensor, array or PIL image) as a tv_tensors Mask of the same shape."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    elif not isinstance(mask, torch.Tensor):
        mask = torch.from_numpy(np.array(mask))
    return tv_tensors.Mask(mask)


class _ImageTransform(SampleTransform):
    """Apply a torchvision v2 transform to ``sample["image"]`` and ``sample["mask"]`` together."""

    transform: Any

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        if "mask" not in sample:
            out["image"] = self.transform(sample["image"])
            return out
        image = sample["image"]
        if isinstance(image, torch.Tensor):
            image = tv_tensors.Image(image)
        image, mask = self.transform(image, _as_mask(sample["mask"]))
        out["image"] = image.as_subclass(torch.Tensor) if isinstance(image, torch.Tensor) else image
        out["mask"] = mask.as_subclass(torch.Tensor)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


class ToTensor(_ImageTransform):
    """Convert a PIL image, an ``H x W [x C]`` array or a tensor to a float ``C x H x W`` tensor.

    A ``mask`` entry becomes a tensor of the same shape and dtype (never rescaled).
    """

    def __init__(self, params: ToTensorParams, ctx: BuildContext | None = None) -> None:
        self.scale = params.scale

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"]
        if isinstance(image, np.ndarray):
            array = image[..., None] if image.ndim == 2 else image
            image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        elif not isinstance(image, torch.Tensor):
            image = v2.functional.pil_to_tensor(image)
        if image.dim() == 2:
            image = image.unsqueeze(0)
        out = dict(sample)
        out["image"] = v2.functional.to_dtype(image, torch.float32, scale=self.scale)
        if "mask" in sample:
            out["mask"] = _as_mask(sample["mask"]).as_subclass(torch.Tensor)
        return out


def _size(value: int | list[int]) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


class _SizedTransform(_ImageTransform):
    """A transform whose output image has a fixed ``size`` (height, width)."""

    size: list[int]

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return ``shapes`` with the last two dimensions of image (and mask) set to ``size``."""
        out = dict(shapes)
        for key in ("image", "mask"):
            if key in shapes:
                out[key] = (*shapes[key][:-2], *self.size)
        return out


class Resize(_SizedTransform):
    """Resize the image to ``size`` with bilinear interpolation."""

    def __init__(self, params: ResizeParams, ctx: BuildContext | None = None) -> None:
        self.size = _size(params.size)
        self.transform = v2.Resize(_size(params.size), antialias=params.antialias)


class RandomResizedCrop(_SizedTransform):
    """Crop a random area and aspect ratio, then resize to ``size`` (Inception-style)."""

    def __init__(self, params: RandomResizedCropParams, ctx: BuildContext | None = None) -> None:
        self.size = _size(params.size)
        self.transform = v2.RandomResizedCrop(
            _size(params.size), scale=params.scale, ratio=params.ratio, antialias=True
        )


class CenterCrop(_SizedTransform):
    """Crop the centre of the image to ``size``."""

    def __init__(self, params: CenterCropParams, ctx: BuildContext | None = None) -> None:
        self.size = _size(params.size)
        self.transform = v2.CenterCrop(_size(params.size))


class HorizontalFlip(_ImageTransform):
    """Flip the image left-right with probability ``p``."""

    def __init__(self, params: HorizontalFlipParams, ctx: BuildContext | None = None) -> None:
        self.transform = v2.RandomHorizontalFlip(params.p)


class VerticalFlip(_ImageTransform):
    """Flip the image top-bottom with probability ``p``."""

    def __init__(self, params: VerticalFlipParams, ctx: BuildContext | None = None) -> None:
        self.transform = v2.RandomVerticalFlip(params.p)


class Rotation(_ImageTransform):
    """Rotate the image by a uniform random angle in ``[-degrees, degrees]``."""

    def __init__(self, params: RotationParams, ctx: BuildContext | None = None) -> None:
        # the image gets ``fill``, a mask 0 (background) where the rotation uncovers pixels
        self.transform = v2.RandomRotation(
            params.degrees, fill={tv_tensors.Mask: 0, "others": params.fill}
        )


class ColorJitter(_ImageTransform):
    """Randomly change brightness, contrast, saturation and hue."""

    def __init__(self, params: ColorJitterParams, ctx: BuildContext | None = None) -> None:
        self.transform = v2.ColorJitter(
            brightness=params.brightness or None,
            contrast=params.contrast or None,
            saturation=params.saturation or None,
            hue=params.hue or None,
        )


class Normalize(_ImageTransform):
    """Subtract ``mean`` and divide by ``std`` per channel of a float image."""

    def __init__(self, params: NormalizeParams, ctx: BuildContext | None = None) -> None:
        if len(params.mean) != len(params.std):
            raise ComponentError(
                f"core.normalize: mean has {len(params.mean)} values and std {len(params.std)}"
            )
        if ctx is not None and ctx.data.in_channels not in (None, len(params.mean)):
            raise ComponentError(
                f"core.normalize: {len(params.mean)} channel statistics for images with "
                f"{ctx.data.in_channels} channels; give one mean/std per channel"
            )
        self.transform = v2.Normalize(params.mean, params.std)
