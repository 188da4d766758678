"""Registration hooks of the polyloss plugin (entry point ``polyloss``)."""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl


@hookimpl
def register_losses(register: Register) -> None:
    """Register Poly-N cross-entropy and Poly-1 focal loss."""
    from asklepios_polyloss.losses import PolyFocalLoss, PolyFocalParams, PolyLoss, PolyLossParams

    register("poly", PolyLoss, PolyLossParams)
    register("poly_focal", PolyFocalLoss, PolyFocalParams)
