"""Registration hooks of the ``knowledge_mask`` plugin (Fundus2Video).

Only hook functions live here. Each imports the light :mod:`asklepios_knowledge_mask.params`
inside its body and registers lazy ``"module:Class"`` targets, so importing this module or running
its hooks loads neither torch nor the components.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import Register


__all__ = [
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_trainers",
]


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the field-of-view preprocessing and the knowledge mask (per-sample)."""
    from asklepios_knowledge_mask import params as p

    register(
        "fov_preprocess", "asklepios_knowledge_mask.masks:FOVPreprocess", p.FOVPreprocessParams
    )
    register("mask", "asklepios_knowledge_mask.masks:KnowledgeMask", p.KnowledgeMaskParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register the mask-enhanced PatchNCE, gradient-variance and VGG19 perceptual losses."""
    from asklepios_knowledge_mask import params as p

    register("patchnce", "asklepios_knowledge_mask.patchnce:MaskedPatchNCE", p.MaskedPatchNCEParams)
    register(
        "gradient_variance",
        "asklepios_knowledge_mask.perceptual:GradientVariance",
        p.GradientVarianceParams,
    )
    register(
        "vgg_perceptual", "asklepios_knowledge_mask.perceptual:VGGPerceptual", p.VGGPerceptualParams
    )


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the sliding-window generator and the knowledge-aware discriminator."""
    from asklepios_knowledge_mask import params as p

    register(
        "generator",
        "asklepios_knowledge_mask.generator:FundusVideoGenerator",
        p.FundusVideoGeneratorParams,
    )
    register(
        "discriminator",
        "asklepios_knowledge_mask.discriminator:KnowledgeAwareDiscriminator",
        p.KnowledgeAwareDiscriminatorParams,
    )


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the per-window-step adversarial trainer."""
    from asklepios_knowledge_mask import params as p

    register(
        "adversarial",
        "asklepios_knowledge_mask.adversarial:AdversarialTrainer",
        p.AdversarialTrainerParams,
    )


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the knowledge-boosted attention (a labelled reconstruction, off by default)."""
    from asklepios_knowledge_mask import params as p

    register(
        "attention",
        "asklepios_knowledge_mask.attention:KnowledgeAttention",
        p.KnowledgeAttentionParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the video metrics (PSNR, SSIM, LPIPS, FVD with explicit value ranges)."""
    from asklepios_knowledge_mask import params as p

    register("video_metrics", "asklepios_knowledge_mask.metrics:VideoMetrics", p.VideoMetricsParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the CSV video dataset and the SYNTHETIC retina-photo video set."""
    from asklepios_knowledge_mask import params as p

    register(
        "ffa_video", "asklepios_knowledge_mask.datasets:FFAVideoDataset", p.FFAVideoDatasetParams
    )
    register(
        "synthetic_ffa_video",
        "asklepios_knowledge_mask.datasets:SyntheticFFAVideo",
        p.SyntheticFFAVideoParams,
    )
