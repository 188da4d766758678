"""Hooks of plugin ``ldfs``: one ``register`` call per component, and the ``stage_end`` hook.

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
    from asklepios_ldfs import params as p

    register("features", "asklepios_ldfs.heads:FeatureBackbone", p.FeatureBackboneParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the stage-1 synthesiser and the stage-2 heads."""
    from asklepios_ldfs import params as p

    register("synthesizer", "asklepios_ldfs.synthesizer:LDFSSynthesizer", p.LDFSSynthesizerParams)
    register("linear_probe", "asklepios_ldfs.heads:LinearProbe", p.LinearProbeParams)
    register("clip_adapter", "asklepios_ldfs.heads:ClipAdapterHead", p.ClipAdapterHeadParams)
    register("coop", "asklepios_ldfs.heads:CoOpHead", p.CoOpHeadParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register the text-guided loss, the pairwise regulariser and their sum."""
    from asklepios_ldfs import params as p

    register("text_guided_loss", "asklepios_ldfs.losses:TextGuidedLoss", p.TextGuidedLossParams)
    register(
        "pairwise_regularizer",
        "asklepios_ldfs.losses:PairwiseRegularizer",
        p.PairwiseRegularizerParams,
    )
    register(
        "synthesis_objective",
        "asklepios_ldfs.losses:SynthesisObjective",
        p.SynthesisObjectiveParams,
    )


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register ``ldfs.text_noise`` and ``ldfs.feature_synthesis`` (per-batch)."""
    from asklepios_ldfs import params as p

    register("text_noise", "asklepios_ldfs.augmentations:TextNoise", p.TextNoiseParams)
    register(
        "feature_synthesis",
        "asklepios_ldfs.augmentations:FeatureSynthesis",
        p.FeatureSynthesisParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``ldfs.domain_accuracy``."""
    from asklepios_ldfs import params as p

    register("domain_accuracy", "asklepios_ldfs.metrics:DomainAccuracy", p.DomainAccuracyParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register ``ldfs.toy_clip_space``."""
    from asklepios_ldfs import params as p

    register("toy_clip_space", "asklepios_ldfs.datasets:ToyClipSpace", p.ToyClipSpaceParams)


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
