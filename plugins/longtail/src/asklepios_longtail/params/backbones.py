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
    num_classes: int | None = Field(None, ge=2, description="C; default: the dataset's.")
    in_chans: int | None = Field(None, ge=1, description="Input channels; default: dataset's.")
