"""Hooks of plugin ``ophnet``: one ``register`` call per component.

The registration hooks import the params models only; every target is a lazy
``"module:Class"`` reference, imported when the component is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import Register
    from asklepios_sdk.registration import RegisterCommand

__all__ = [
    "register_augmentations",
    "register_backbones",
    "register_commands",
    "register_datasets",
    "register_evaluators",
    "register_losses",
]


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the OphNet annotation and feature datasets, the challenge labels, the toy data."""
    from asklepios_ophnet import params as p

    register(
        "annotations", "asklepios_ophnet.datasets:AnnotationsDataset", p.AnnotationsDatasetParams
    )
    register(
        "tal_features", "asklepios_ophnet.datasets:TALFeaturesDataset", p.TALFeaturesDatasetParams
    )
    register(
        "challenge_labels", "asklepios_ophnet.datasets:ChallengeLabels", p.ChallengeLabelsParams
    )
    register(
        "synthetic", "asklepios_ophnet.synthetic:SyntheticSequences", p.SyntheticSequencesParams
    )


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register ``ophnet.truncate``."""
    from asklepios_ophnet import params as p

    register("truncate", "asklepios_ophnet.transforms:Truncate", p.TruncateParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``ophnet.mstcn`` and ``ophnet.actionformer``."""
    from asklepios_ophnet import params as p

    register("mstcn", "asklepios_ophnet.mstcn:MSTCN", p.MSTCNParams)
    register("actionformer", "asklepios_ophnet.actionformer:ActionFormer", p.ActionFormerParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``ophnet.mstcn_loss`` and ``ophnet.actionformer_loss``."""
    from asklepios_ophnet import params as p

    register("mstcn_loss", "asklepios_ophnet.mstcn:MSTCNLoss", p.MSTCNLossParams)
    register(
        "actionformer_loss",
        "asklepios_ophnet.actionformer_loss:ActionFormerLoss",
        p.ActionFormerLossParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``ophnet.tal_map`` and ``ophnet.phase_recognition``."""
    from asklepios_ophnet import params as p

    register("tal_map", "asklepios_ophnet.metrics:TALMapEvaluator", p.TALMapEvaluatorParams)
    register(
        "phase_recognition",
        "asklepios_ophnet.metrics:PhaseRecognitionEvaluator",
        p.PhaseRecognitionEvaluatorParams,
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``asklepios ophnet challenge|convert|pkl-to-npy``."""
    register("challenge", "asklepios_ophnet.cli:challenge")
    register("convert", "asklepios_ophnet.cli:convert")
    register("pkl-to-npy", "asklepios_ophnet.cli:pkl_to_npy")
