"""PanDerm's per-sample transforms: evaluation, fine-tuning and segmentation (§4).

Each takes a sample whose ``image`` is a PIL image, an ``H x W x C`` uint8 array or a float
``C x H x W`` tensor in [0, 1], and returns a float tensor. PIL inputs go through the same PIL
operations as the repo's torchvision pipelines. Randomness comes from torch's global generator
(``random`` for the optional RandAugment), which the engine seeds per worker.

PanDerm normalises with std ``(0.228, 0.224, 0.225)``, not ImageNet's 0.229, in its linear-probe
and fine-tuning code: that is what the checkpoint's published features were computed with, so it
is the default (``std: imagenet`` is the option).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, SampleTransform
from PIL import Image
from torchvision.transforms import v2

from asklepios_panderm.params import (
    EvalTransformParams,
    FinetuneTransformParams,
    SegTransformParams,
)

__all__ = [
    "IMAGENET_MEAN",
    "STDS",
    "EvalTransform",
    "FinetuneTransform",
    "SegTransform",
    "to_pil",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
STDS: dict[str, tuple[float, float, float]] = {
    "panderm": (0.228, 0.224, 0.225),
    "imagenet": (0.229, 0.224, 0.225),
}


def to_pil(image: Any, mode: str = "RGB") -> Image.Image:
    """Return ``image`` (PIL, ``H x W [x C]`` array, ``C x H x W`` tensor in [0, 1]) as PIL."""
    if isinstance(image, Image.Image):
        return image.convert(mode) if image.mode != mode else image
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
        if array.ndim == 3:
            array = np.moveaxis(array, 0, -1)
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        image = array
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert(mode)


def _to_tensor(std: str | tuple[float, ...], normalize: bool = True) -> list[Any]:
    steps: list[Any] = [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]
    if normalize:
        mean = IMAGENET_MEAN
        stds = STDS[std] if isinstance(std, str) else std
        steps.append(v2.Normalize(mean=list(mean), std=list(stds)))
    return steps


class _PILPipeline(SampleTransform):
    """Convert ``image`` to RGB PIL, run a torchvision pipeline, keep the other keys."""

    pipeline: v2.Compose
    size: int | None = None

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        out["image"] = self.pipeline(to_pil(sample["image"]))
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the image shape ``3 x size x size`` when the pipeline crops."""
        out = dict(shapes)
        if "image" in out and self.size is not None:
            out["image"] = (3, self.size, self.size)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


class EvalTransform(_PILPipeline):
    """Resize the shorter side to 256, centre-crop 224, normalise (std 0.228 by default)."""

    def __init__(self, params: EvalTransformParams, ctx: BuildContext) -> None:
        steps: list[Any] = []
        if params.resize is not None:
            steps.append(v2.Resize(params.resize, interpolation=v2.InterpolationMode.BILINEAR))
        if params.crop is not None:
            steps.append(v2.CenterCrop(params.crop))
        self.pipeline = v2.Compose(steps + _to_tensor(params.std, params.normalize))
        self.size = params.crop

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the cropped shape, or the input shape resized when only ``resize`` is set."""
        out = dict(shapes)
        if "image" not in out or self.size is not None:
            return super().output_shapes(shapes)
        resize = next((s for s in self.pipeline.transforms if isinstance(s, v2.Resize)), None)
        if resize is not None and resize.size is not None:
            h, w = out["image"][-2:]
            short = int(resize.size[0])
            long = int(short * max(h, w) / min(h, w))  # torchvision's rounding
            out["image"] = (3, short, long) if h <= w else (3, long, short)
        else:
            out["image"] = (3, *out["image"][-2:])
        return out


class FinetuneTransform(_PILPipeline):
    """Augment for fine-tuning: resize 256, random-resized crop 224, flips, rotation, hue jitter."""

    def __init__(self, params: FinetuneTransformParams, ctx: BuildContext) -> None:
        steps: list[Any] = [
            v2.Resize(params.resize),
            v2.RandomResizedCrop(params.crop, scale=params.scale),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(params.rotation),
            v2.ColorJitter(hue=params.hue),
        ]
        if params.auto_augment:
            from timm.data.auto_augment import rand_augment_transform

            steps.append(rand_augment_transform(params.auto_augment, {"img_mean": (124, 116, 104)}))
        steps += _to_tensor(params.std)
        if params.random_erasing > 0:
            from timm.data.random_erasing import RandomErasing

            steps.append(RandomErasing(params.random_erasing, mode="pixel", device="cpu"))
        self.pipeline = v2.Compose(steps)
        self.size = params.crop


class SegTransform(SampleTransform):
    """Resize image (bicubic) and mask (nearest) to 224, binarise the mask, normalise to [-1, 1].

    ``augment`` adds PanDerm's training photometric jitter to the image only (the repo uses no
    geometric augmentation for segmentation, so image and mask stay aligned by construction).
    """

    def __init__(self, params: SegTransformParams, ctx: BuildContext) -> None:
        self.size = params.size
        steps: list[Any] = []
        if params.augment:
            steps += [
                v2.ColorJitter(0.2, 0.2, 0.2, 0.2),
                v2.RandomGrayscale(p=0.2),
                v2.RandomAutocontrast(p=0.2),
                v2.RandomInvert(p=0.2),
            ]
        self.pipeline = v2.Compose(steps + _to_tensor("panderm", normalize=False))
        self.normalize = v2.Normalize(mean=[params.mean] * 3, std=[params.std] * 3)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        size = (self.size, self.size)
        image = to_pil(sample["image"]).resize(size, Image.Resampling.BICUBIC)
        out["image"] = self.normalize(self.pipeline(image))
        if "mask" in sample:
            mask = _mask_array(sample["mask"])
            resized = Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)
            out["mask"] = torch.from_numpy((np.asarray(resized) > 0).astype(np.int64))
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return ``3 x size x size`` for the image and ``size x size`` for the mask."""
        out = dict(shapes)
        if "image" in out:
            out["image"] = (3, self.size, self.size)
        if "mask" in out:
            out["mask"] = (self.size, self.size)
        return out

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return an image with a lesion-like mask."""
        gen = torch.Generator().manual_seed(0)
        mask = torch.zeros(20, 24, dtype=torch.int64)
        mask[5:15, 6:18] = 1
        return {"image": torch.rand(3, 20, 24, generator=gen), "mask": mask, "label": 0}


def _mask_array(mask: Any) -> np.ndarray:
    """Return a mask (PIL, array or tensor; 0/255 or 0/1) as a uint8 ``H x W`` 0/255 array."""
    if isinstance(mask, Image.Image):
        array = np.asarray(mask.convert("L"))
    elif isinstance(mask, torch.Tensor):
        array = mask.detach().cpu().numpy()
    else:
        array = np.asarray(mask)
    if array.ndim == 3:
        array = array[0] if array.shape[0] in (1, 3) else array[..., 0]
    threshold = 127 if array.max(initial=0) > 1 else 0
    return np.where(array > threshold, 255, 0).astype(np.uint8)
