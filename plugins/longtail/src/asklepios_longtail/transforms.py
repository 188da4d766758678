"""Per-sample transforms: MONICA's presets (strong, weak, randaugment, crop, resize), two views.

Images are float tensors (C, H, W) in [0, 1]; randomness comes from torch's global generator
(which the engine seeds per DataLoader worker), so a transform is reproducible under a seed and
pickles for workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from asklepios_sdk import BuildContext, ComponentError, SampleTransform
from torch import Tensor

from asklepios_longtail.params import PresetParams, TwoViewParams

__all__ = [
    "Preset",
    "TwoView",
    "UDARandAugment",
]

OPS = (
    "invert",
    "cutout",
    "sharpness",
    "autocontrast",
    "posterize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "equalize",
    "contrast",
    "color",
    "solarize",
    "brightness",
)


class UDARandAugment:
    """Apply one random policy of two ops to a uint8 image (UDA-style RandAugment).

    Each op is drawn uniformly from 15 and applied with probability ``prob`` at a magnitude drawn
    uniformly from 1..9 (of 10). The magnitude-to-parameter map follows torchvision's RandAugment
    ranges (reconstructed: the exact map of ``randaugment==1.0.2`` is not reproduced).
    """

    def __init__(self, num_ops: int = 2, prob: float = 0.5, max_level: int = 9) -> None:
        self.num_ops = num_ops
        self.prob = prob
        self.max_level = max_level

    def apply(self, image: Tensor, op: str, level: float) -> Tensor:
        """Apply ``op`` at ``level`` in [0, 1] (a fraction of the largest magnitude)."""
        from torchvision.transforms.v2 import functional as TF

        height, width = image.shape[-2:]
        sign = 1.0 if float(torch.rand(())) < 0.5 else -1.0
        if op == "invert":
            return TF.invert(image)
        if op == "cutout":
            size = max(1, int(level * 0.5 * min(height, width)))
            cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
            out = image.clone()
            out[
                ...,
                max(cy - size // 2, 0) : cy + size // 2,
                max(cx - size // 2, 0) : cx + size // 2,
            ] = 128
            return out
        if op == "sharpness":
            return TF.adjust_sharpness(image, 1 + sign * 0.9 * level)
        if op == "autocontrast":
            return TF.autocontrast(image)
        if op == "posterize":
            return TF.posterize(image, max(1, 8 - int(4 * level)))
        if op in ("shear_x", "shear_y"):
            angle = sign * float(torch.rad2deg(torch.atan(torch.tensor(0.3 * level))))
            shear = [angle, 0.0] if op == "shear_x" else [0.0, angle]
            return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear)
        if op in ("translate_x", "translate_y"):
            shift = sign * 0.45 * level
            move = [int(shift * width), 0] if op == "translate_x" else [0, int(shift * height)]
            return TF.affine(image, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0])
        if op == "rotate":
            return TF.rotate(image, sign * 30.0 * level)
        if op == "equalize":
            return TF.equalize(image)
        if op == "contrast":
            return TF.adjust_contrast(image, 1 + sign * 0.9 * level)
        if op == "color":
            return TF.adjust_saturation(image, 1 + sign * 0.9 * level)
        if op == "solarize":
            return TF.solarize(image, int(255 * (1 - level)))
        return TF.adjust_brightness(image, 1 + sign * 0.9 * level)

    def __call__(self, image: Tensor) -> Tensor:
        out = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        for _ in range(self.num_ops):
            op = OPS[int(torch.randint(len(OPS), ()))]
            if float(torch.rand(())) < self.prob:
                level = int(torch.randint(1, self.max_level + 1, ())) / 10
                out = self.apply(out, op, level)
        return out.float() / 255


class Preset(SampleTransform):
    """Apply one of MONICA's transform presets to ``sample["image"]``, then normalise.

    strong: resize (S+40)² → random crop S → h-flip → v-flip → rotate ±10° → colour jitter 0.2;
    weak: resize S² → h-flip; randaugment: resize S² → h-flip → UDA RandAugment (two ops);
    crop: resize (S+40)² → centre crop S; resize: resize S².

    References: MONICA ``dataset/get_datasets.py``.
    """

    def __init__(self, params: PresetParams, ctx: BuildContext | None = None) -> None:
        self.params = params
        if len(params.mean) != len(params.std):
            raise ComponentError("longtail.transforms: mean and std need the same length")
        self.randaugment = UDARandAugment()

    def transform(self, image: Tensor) -> Tensor:
        """Return the transformed image tensor."""
        from torchvision.transforms.v2 import functional as TF

        p = self.params
        size, big = [p.size, p.size], [p.size + p.margin, p.size + p.margin]
        if p.preset in ("strong", "crop"):
            image = TF.resize(image, big, antialias=True)
            if p.preset == "crop":
                image = TF.center_crop(image, size)
            else:
                top = int(torch.randint(p.margin + 1, ()))
                left = int(torch.randint(p.margin + 1, ()))
                image = TF.crop(image, top, left, p.size, p.size)
                image = _flip(image, TF.horizontal_flip)
                image = _flip(image, TF.vertical_flip)
                image = TF.rotate(image, float(torch.empty(()).uniform_(-10, 10)))
                image = _jitter(image)
        else:
            image = TF.resize(image, size, antialias=True)
            if p.preset in ("weak", "randaugment"):
                image = _flip(image, TF.horizontal_flip)
            if p.preset == "randaugment":
                image = self.randaugment(image)
        image = image.clamp(0, 1)
        if p.normalize:
            if image.shape[0] != len(p.mean):
                raise ComponentError(
                    f"longtail.transforms: image has {image.shape[0]} channels but mean/std have "
                    f"{len(p.mean)}; set mean and std per channel or normalize: false"
                )
            image = TF.normalize(image, list(p.mean), list(p.std))
        return image

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        out["image"] = self.transform(sample["image"].float())
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Declare the resized image: (C, S, S)."""
        out = dict(shapes)
        out["image"] = (shapes["image"][0], self.params.size, self.params.size)
        return out

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return one 3-channel image in [0, 1] (the contract of these presets)."""
        gen = torch.Generator().manual_seed(0)
        return {"image": torch.rand(3, 20, 20, generator=gen), "label": torch.tensor(0)}


def _flip(image: Tensor, fn: Any) -> Tensor:
    return fn(image) if float(torch.rand(())) < 0.5 else image


def _jitter(image: Tensor) -> Tensor:
    from torchvision.transforms.v2 import functional as TF

    factors = torch.empty(4).uniform_(0.8, 1.2)
    hue = float(torch.empty(()).uniform_(-0.2, 0.2))
    order = torch.randperm(4).tolist()
    for index in order:
        if index == 0:
            image = TF.adjust_brightness(image, float(factors[0]))
        elif index == 1:
            image = TF.adjust_contrast(image, float(factors[1]))
        elif index == 2:
            image = TF.adjust_saturation(image, float(factors[2]))
        elif image.shape[0] == 3:
            image = TF.adjust_hue(image, hue)
    return image


class TwoView(Preset):
    """Return two independently transformed views: ``image`` and ``image_view2`` (ConMix).

    References: MONICA ``dataset/dataloader.py:customData`` (``twice=True``).
    """

    params: TwoViewParams

    def __init__(self, params: TwoViewParams, ctx: BuildContext | None = None) -> None:
        super().__init__(params, ctx)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"].float()
        out = dict(sample)
        out["image"] = self.transform(image)
        out[self.params.key] = self.transform(image)
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Declare the added second view (same shape as the first)."""
        out = super().output_shapes(shapes)
        out[self.params.key] = out["image"]
        return out
