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
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_trainers",
]


def _doc(component: type) -> str:
    """Return the first line of a component class's docstring (its one-line description)."""
    return (component.__doc__ or component.__name__).strip().splitlines()[0]


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the field-of-view preprocessing and the knowledge mask (per-sample)."""
    from asklepios_knowledge_mask import masks

    register(
        "fov_preprocess",
        lambda params, ctx: masks.FOVPreprocess(params),
        params=masks.FOVPreprocessParams,
        doc=_doc(masks.FOVPreprocess),
    )
    register(
        "mask",
        lambda params, ctx: masks.KnowledgeMask(params),
        params=masks.KnowledgeMaskParams,
        doc=_doc(masks.KnowledgeMask),
    )


@hookimpl
def register_losses(register: Register) -> None:
    """Register the mask-enhanced PatchNCE, gradient-variance and VGG19 perceptual losses."""
    from asklepios_knowledge_mask import patchnce, perceptual

    register(
        "patchnce",
        lambda params, ctx: patchnce.MaskedPatchNCE(params),
        params=patchnce.PatchNCEParams,
        doc=_doc(patchnce.MaskedPatchNCE),
    )
    register(
        "gradient_variance",
        lambda params, ctx: perceptual.GradientVariance(params),
        params=perceptual.GradientVarianceParams,
        doc=_doc(perceptual.GradientVariance),
    )
    register(
        "vgg_perceptual",
        lambda params, ctx: perceptual.VGGPerceptual(params),
        params=perceptual.VGGPerceptualParams,
        doc=_doc(perceptual.VGGPerceptual),
    )


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the sliding-window generator and the knowledge-aware discriminator."""
    from asklepios_knowledge_mask import discriminator, generator

    register(
        "generator",
        lambda params, ctx: generator.FundusVideoGenerator(params),
        params=generator.GeneratorParams,
        doc=_doc(generator.FundusVideoGenerator),
    )
    register(
        "discriminator",
        lambda params, ctx: discriminator.KnowledgeAwareDiscriminator(params),
        params=discriminator.DiscriminatorParams,
        doc=_doc(discriminator.KnowledgeAwareDiscriminator),
    )


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the per-window-step adversarial trainer."""
    from asklepios_knowledge_mask import adversarial

    register(
        "adversarial",
        lambda params, ctx: adversarial.AdversarialTrainer(params, ctx.world_size),
        params=adversarial.AdversarialParams,
        doc=_doc(adversarial.AdversarialTrainer),
    )


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the knowledge-boosted attention (a labelled reconstruction, off by default)."""
    from asklepios_knowledge_mask import attention

    register(
        "attention",
        lambda params, ctx: attention.KnowledgeAttention(params),
        params=attention.KnowledgeAttentionParams,
        doc=_doc(attention.KnowledgeAttention),
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the video metrics (PSNR, SSIM, LPIPS, FVD with explicit value ranges)."""
    from asklepios_knowledge_mask import metrics

    register(
        "video_metrics",
        lambda params, ctx: metrics.VideoMetrics(params),
        params=metrics.VideoMetricsParams,
        doc=_doc(metrics.VideoMetrics),
    )


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the CSV video dataset and the SYNTHETIC retina-photo video set."""
    from asklepios_knowledge_mask import datasets

    register(
        "ffa_video",
        lambda params, ctx: datasets.FFAVideoDataset(params),
        params=datasets.FFAVideoParams,
        doc=_doc(datasets.FFAVideoDataset),
    )
    register(
        "synthetic_ffa_video",
        lambda params, ctx: datasets.SyntheticFFAVideo(params),
        params=datasets.SyntheticFFAVideoParams,
        doc=_doc(datasets.SyntheticFFAVideo),
    )
