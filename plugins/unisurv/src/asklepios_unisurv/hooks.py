"""Registration hooks of the ``unisurv`` plugin: each imports its family module when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import Register

__all__ = ["register_adapters", "register_backbones", "register_datasets", "register_losses"]


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``unisurv.mmv``."""
    from asklepios_unisurv import losses

    register("mmv", losses.build_mmv_loss, losses.MMVLossParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register ``unisurv.km_margin``."""
    from asklepios_unisurv import margins

    register("km_margin", margins.build_km_margin, margins.KMMarginParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``unisurv.transformer``."""
    from asklepios_unisurv import transformer

    register("transformer", transformer.build_transformer, transformer.TransformerParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register ``unisurv.pdf_head``."""
    from asklepios_unisurv import transformer

    register("pdf_head", transformer.build_pdf_head, transformer.PDFHeadParams)
