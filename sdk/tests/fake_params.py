"""Params models of the fake plugins: pydantic and the SDK only, as a plugin's ``params.py``.

Registering a component imports its params model; keeping the models here, apart from the torch
classes in ``fake_plugins``, is what lets a hook module pass the kit's ``registration-light``.
"""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field


class LinearBackboneParams(Params):
    """Params of the tiny linear backbone."""

    hidden: int = Field(4, ge=1, description="Width of the features.")


class ScaleAdapterParams(Params):
    """Params of the logit-scaling adapter."""

    init: float = Field(1.0, gt=0, description="Initial scale.")


class FocalLossParams(Params):
    """Params of the focal loss."""

    gamma: float = Field(2.0, ge=0, description="Focusing parameter.")
