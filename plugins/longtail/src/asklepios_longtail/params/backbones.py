"""Params of the multi-expert ResNet (SADE, RIDE) and the RSG backbone.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "ExpertResNetParams",
    "RSGResNeXtParams",
]


class ExpertResNetParams(Params):
    """Params of :class:`~asklepios_longtail.backbones.ExpertResNet`."""

    layers: tuple[int, int, int, int] = Field(
        (3, 4, 6, 3), description="Bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3)."
    )
    planes: tuple[int, int, int, int] = Field(
        (64, 128, 192, 384),
        description="Planes per stage; SADE reduces the experts' stages 3 and 4 to 192 and 384.",
    )
    num_experts: int = Field(3, ge=1, description="Experts (SADE: 3).")
    scale: float = Field(30.0, gt=0, description="s multiplying each expert's cosine logits.")
    num_classes: int | None = Field(None, ge=2, description="C; default: the dataset's.")
    in_chans: int | None = Field(None, ge=1, description="Input channels; default: dataset's.")


class RSGResNeXtParams(Params):
    """Params of :class:`~asklepios_longtail.rsg.RSGResNeXt`."""

    model_name: str = Field("resnext50_32x4d", description="timm ResNet-family trunk.")
    n_center: int = Field(15, ge=1, description="Centers per class.")
    contrastive_dim: int = Field(256, ge=1, description="Width of the pair-contrastive module.")
    cesc_weight: float = Field(0.1, ge=0, description="Weight of the CESC term in aux_losses.")
    epoch_thresh: int = Field(
        160,
        ge=-1,
        description="The pair-contrastive term runs while epoch <= this, the feature transfer "
        "(MV) from epoch > this (0-based; MONICA hard-codes 160, so with E = 50 MV never runs).",
    )
    transfer_strength: float = Field(
        1.0,
        gt=0,
        le=1,
        description="How many head samples lend a variation per tail sample: int(n_head · "
        "strength / n_tail) rounds (or the reverse); MONICA 1 (its code needs <= 1).",
    )
    mv_weight: float = Field(0.01, ge=0, description="Weight of the MV term in aux_losses.")
    head_classes: int | None = Field(
        None,
        ge=1,
        description="Head classes for the feature transfer: this many most frequent training "
        "classes (MONICA datasets.head; ties to the lower id). Needed when MV runs.",
    )
    num_classes: int | None = Field(None, ge=2, description="C; default: the dataset's.")
    in_chans: int | None = Field(None, ge=1, description="Input channels; default: dataset's.")
