"""Params models of the PolyLoss components: pydantic and the SDK only, so registering is cheap.

The registration hook imports this module; the losses in :mod:`asklepios_polyloss.losses` (which
import torch) are loaded only when a config builds one.
"""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field, field_validator

__all__ = ["PolyFocalLossParams", "PolyLossParams"]


class PolyLossParams(Params):
    """Params of ``PolyLoss``."""

    epsilon: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="eps_1..eps_N added to the first N polynomial coefficients; [eps] is Poly-1.",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Smoothing of the targets.")

    @field_validator("epsilon")
    @classmethod
    def _poly1_monotone(cls, value: list[float]) -> list[float]:
        if len(value) == 1 and value[0] < -1:
            raise ValueError(
                f"Poly-1 needs epsilon >= -1 (got {value[0]}): below it the loss is no longer "
                "monotonically decreasing in p_t (Leng et al., 2022, section 4)"
            )
        return value


class PolyFocalLossParams(Params):
    """Params of ``PolyFocalLoss`` (defaults: the paper's detection setting)."""

    epsilon: float = Field(-1.0, ge=-1, description="Coefficient of (1 - p_t)^(gamma + 1).")
    gamma: float = Field(2.0, ge=0, description="Focusing parameter of the focal loss.")
    alpha: float | None = Field(
        0.25, ge=0, le=1, description="Weight of positives; null turns alpha-balancing off."
    )
