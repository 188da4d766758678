"""Registration hooks of the polyloss plugin (entry point ``polyloss``).

One ``register(name, "package.module:Class", ClassParams)`` call per component: the hook imports
the params models only, and each loss class (with torch) is imported when a config builds it.
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl


@hookimpl
def register_losses(register: Register) -> None:
    """Register Poly-N cross-entropy and Poly-1 focal loss."""
    from asklepios_polyloss import params as p

    register("poly", "asklepios_polyloss.losses:PolyLoss", p.PolyLossParams)
    register("poly_focal", "asklepios_polyloss.losses:PolyFocalLoss", p.PolyFocalLossParams)
