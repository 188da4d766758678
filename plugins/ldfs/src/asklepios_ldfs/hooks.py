"""Registration hooks of plugin ``ldfs``; each imports its family module inside the function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asklepios_sdk import Register, hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import RunState

__all__ = [
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "stage_end",
]


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``ldfs.features`` (cached unit features passed through)."""
    from asklepios_ldfs import heads

    register("features", heads.FeatureBackbone, heads.FeatureBackboneParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the stage-1 synthesiser and the stage-2 heads."""
    from asklepios_ldfs import heads, synthesizer

    register("synthesizer", synthesizer.LDFSSynthesizer, synthesizer.SynthesizerParams)
    register("linear_probe", heads.LinearProbe, heads.LinearProbeParams)
    register("clip_adapter", heads.ClipAdapterHead, heads.ClipAdapterParams)
    register("coop", heads.CoOpHead, heads.CoOpParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register the text-guided loss, the pairwise regulariser and their sum."""
    from asklepios_ldfs import losses

    register("text_guided_loss", losses.TextGuidedLoss, losses.TextGuidedParams)
    register("pairwise_regularizer", losses.PairwiseRegularizer, losses.PairwiseParams)
    register("synthesis_objective", losses.SynthesisObjective, losses.SynthesisObjectiveParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register ``ldfs.text_noise`` and ``ldfs.feature_synthesis`` (per-batch)."""
    from asklepios_ldfs import augmentations

    register("text_noise", augmentations.TextNoise, augmentations.TextNoiseParams)
    register(
        "feature_synthesis",
        augmentations.FeatureSynthesis,
        augmentations.FeatureSynthesisParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``ldfs.domain_accuracy``."""
    from asklepios_ldfs import metrics

    register("domain_accuracy", metrics.DomainAccuracy, metrics.DomainAccuracyParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register ``ldfs.toy_clip_space``."""
    from asklepios_ldfs import datasets

    register("toy_clip_space", datasets.ToyClipSpace, datasets.ToyClipSpaceParams)


@hookimpl
def stage_end(run: RunState, stage: str, summary: Mapping[str, Any]) -> None:
    """Save every trained synthesiser of the stage for ``ldfs.feature_synthesis`` (rank 0)."""
    if not run.is_main or not run.output_dir:
        return
    from asklepios_ldfs.augmentations import synthesizer_path
    from asklepios_ldfs.synthesizer import SynthesisNet, save_synthesizer

    nets = [m for m in run.model.modules() if isinstance(m, SynthesisNet)]
    if nets:
        save_synthesizer(nets[0], synthesizer_path(run.output_dir, stage))
