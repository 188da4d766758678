"""Hooks of plugin ``tpdrseg``: one ``register`` call per component, and ``record_metadata``.

The registration hooks import the params models only; every target is a lazy
``"module:Class"`` reference, imported when the component is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asklepios_sdk import Register, hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import RunState

__all__ = [
    "record_metadata",
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_samplers",
]


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``tpdrseg.sam_encoder`` (SAM's frozen ViT image encoder)."""
    from asklepios_tpdrseg import params as p

    register("sam_encoder", "asklepios_tpdrseg.encoder:SamImageEncoder", p.SamImageEncoderParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the explicit prior, the injectors, the prompt generator and the mask decoder."""
    from asklepios_sdk import EmptyParams

    from asklepios_tpdrseg import params as p

    register("explicit_prior", "asklepios_tpdrseg.prior:ExplicitPrior", p.ExplicitPriorParams)
    register("injector", "asklepios_tpdrseg.injector:Injector", p.InjectorParams)
    register("prompt_generator", "asklepios_tpdrseg.decoder:PromptGenerator", EmptyParams)
    register("mask_decoder", "asklepios_tpdrseg.decoder:MaskDecoderHead", p.MaskDecoderHeadParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``tpdrseg.bce_dice``."""
    from asklepios_tpdrseg import params as p

    register("bce_dice", "asklepios_tpdrseg.losses:BceDiceLoss", p.BceDiceLossParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register ``tpdrseg.fundus_aug`` (per-sample, image and mask together)."""
    from asklepios_tpdrseg import params as p

    register("fundus_aug", "asklepios_tpdrseg.augmentations:FundusAug", p.FundusAugParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register ``tpdrseg.lesion_sampler``."""
    from asklepios_tpdrseg import params as p

    register("lesion_sampler", "asklepios_tpdrseg.samplers:LesionSampler", p.LesionSamplerParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``tpdrseg.lesion_metrics``."""
    from asklepios_tpdrseg import params as p

    register("lesion_metrics", "asklepios_tpdrseg.metrics:LesionMetrics", p.LesionMetricsParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register ``tpdrseg.fundus_lesions`` (IDRiD, DDR) and ``tpdrseg.skimage_fundus`` (demo)."""
    from asklepios_tpdrseg import params as p

    register("fundus_lesions", "asklepios_tpdrseg.datasets:FundusLesions", p.FundusLesionsParams)
    register("skimage_fundus", "asklepios_tpdrseg.datasets:SkimageFundus", p.SkimageFundusParams)


@hookimpl
def record_metadata(run: RunState) -> Mapping[str, Any] | None:
    """Return the frozen weights (file and sha256) that checkpoints refer to instead of copy."""
    from asklepios_tpdrseg._frozen import configured_weights

    found = configured_weights(run.config)
    return {"frozen_weights": found} if found else None
