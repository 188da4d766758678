"""Registration hooks of the ``synfer`` plugin: lazy targets, params from ``params``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import Register, hookimpl

if TYPE_CHECKING:
    from asklepios_sdk.registration import RegisterCommand

__all__ = [
    "register_adapters",
    "register_backbones",
    "register_commands",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_trainers",
]


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the frozen Stable Diffusion parts (local folder or tiny random)."""
    from asklepios_synfer import params as p

    register("ldm", "asklepios_synfer.ldm:LatentDiffusion", p.LatentDiffusionParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the latent-diffusion ε-MSE step (LoRA or AU-adapter training)."""
    from asklepios_synfer import params as p

    register(
        "diffusion_train", "asklepios_synfer.trainer:DiffusionTrainer", p.DiffusionTrainerParams
    )


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the AU adapter and the guided generation loop."""
    from asklepios_synfer import params as p

    register("au_adapter", "asklepios_synfer.au_adapter:AUAdapter", p.AUAdapterParams)
    register(
        "guided_generation",
        "asklepios_synfer.generation:GuidedGeneration",
        p.GuidedGenerationParams,
    )


@hookimpl
def register_losses(register: Register) -> None:
    """Register the semantic-guidance loss and the soft-label cross-entropy."""
    from asklepios_synfer import params as p

    register(
        "semantic_guidance", "asklepios_synfer.guidance:SemanticGuidance", p.SemanticGuidanceParams
    )
    register("soft_ce", "asklepios_synfer.losses:SoftCrossEntropy", p.SoftCrossEntropyParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register FEText, the digits stand-in, generation requests and the synthetic FER set."""
    from asklepios_synfer import params as p

    register("fetext", "asklepios_synfer.datasets:FEText", p.FETextParams)
    register("digits_fetext", "asklepios_synfer.datasets:DigitsFEText", p.DigitsFETextParams)
    register("requests", "asklepios_synfer.datasets:GenerationRequests", p.GenerationRequestsParams)
    register("synthetic_fer", "asklepios_synfer.synthetic:SyntheticFER", p.SyntheticFERParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the label calibrator and the generation-quality evaluator."""
    from asklepios_synfer import params as p

    register(
        "label_calibrator", "asklepios_synfer.calibrator:LabelCalibrator", p.LabelCalibratorParams
    )
    register(
        "generation_quality",
        "asklepios_synfer.quality:GenerationQuality",
        p.GenerationQualityParams,
    )


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register 'asklepios synfer write-digits-fetext' and 'write-tiny-sd'."""
    register("write-digits-fetext", "asklepios_synfer.commands:write_digits_fetext")
    register("write-tiny-sd", "asklepios_synfer.commands:write_tiny_sd")
