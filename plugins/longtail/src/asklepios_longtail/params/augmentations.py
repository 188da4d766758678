"""Params of the per-batch mixing augmentations and the per-sample transform presets.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CutMixParams",
    "MixUpParams",
    "PresetParams",
    "ReMixParams",
    "TwoViewParams",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet (the presets' default normalisation)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet."""


class MixUpParams(Params):
    """Params of :class:`~asklepios_longtail.augmentations.MixUp`."""

    alpha: float = Field(1.0, ge=0, description="λ ~ Beta(α, α) per batch (α = 1: uniform).")


class CutMixParams(Params):
    """Params of :class:`~asklepios_longtail.augmentations.CutMix`."""

    alpha: float = Field(1.0, ge=0, description="λ ~ Beta(α, α) per batch.")
    prob: float = Field(1.0, ge=0, le=1, description="Probability of mixing a batch.")


class ReMixParams(Params):
    """Params of :class:`~asklepios_longtail.augmentations.ReMix`."""

    alpha: float = Field(1.0, ge=0, description="λ_x ~ Beta(α, α) per batch.")
    kappa: float = Field(3.0, gt=0, description="Count ratio κ that triggers a minority label.")
    tau: float = Field(0.5, ge=0, le=1, description="Mixing threshold τ.")


class PresetParams(Params):
    """Params of :class:`~asklepios_longtail.transforms.Preset`."""

    preset: Literal["strong", "weak", "randaugment", "crop", "resize"] = Field(
        "strong",
        description="strong / weak / randaugment (training) or crop / resize (evaluation), as "
        "MONICA's dataset/get_datasets.py.",
    )
    size: int = Field(224, ge=1, description="Output side S (MONICA img_size).")
    margin: int = Field(40, ge=0, description="strong and crop first resize to S + margin.")
    normalize: bool = Field(True, description="Normalise with mean/std after the preset.")
    mean: tuple[float, ...] = Field(IMAGENET_MEAN, description="Per-channel mean (ImageNet).")
    std: tuple[float, ...] = Field(IMAGENET_STD, description="Per-channel std (ImageNet).")


class TwoViewParams(PresetParams):
    """Params of :class:`~asklepios_longtail.transforms.TwoView`."""

    key: str = Field("image_view2", description="Sample key of the second view.")
