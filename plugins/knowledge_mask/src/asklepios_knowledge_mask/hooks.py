"""Registration hooks of the ``knowledge_mask`` plugin (Fundus2Video).

Only hook functions live here; each imports its family module inside the function body, so importing
this module loads neither torch nor the components.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import Register

__all__ = [
    "register_augmentations",
]


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the field-of-view preprocessing and the knowledge mask (per-sample)."""
    from asklepios_knowledge_mask import masks

    register(
        "fov_preprocess",
        lambda params, ctx: masks.FOVPreprocess(params),
        params=masks.FOVPreprocessParams,
        doc=masks.FOVPreprocess.__doc__.splitlines()[0],
    )
    register(
        "mask",
        lambda params, ctx: masks.KnowledgeMask(params),
        params=masks.KnowledgeMaskParams,
        doc=masks.KnowledgeMask.__doc__.splitlines()[0],
    )
