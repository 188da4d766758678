"""Registration hooks of the ``diffusion_tta`` plugin: lazy targets, params from ``params``."""

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
    "register_trainers",
    "stage_end",
]


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the ImageNet-C / MedMNIST-C corruption transform."""
    from asklepios_diffusion_tta import params as p

    register("corruptions", "asklepios_diffusion_tta.corruptions:Corruption", p.CorruptionParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the DDA input adapter and the self-ensembling wrapper."""
    from asklepios_diffusion_tta import params as p

    register(
        "ddpm_adapter", "asklepios_diffusion_tta.ddpm_adapter:DDPMAdapter", p.DDPMAdapterParams
    )
    register(
        "self_ensemble",
        "asklepios_diffusion_tta.self_ensemble:SelfEnsemble",
        p.SelfEnsembleParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the corruption-robustness and denoising-error evaluators."""
    from asklepios_sdk import EmptyParams

    from asklepios_diffusion_tta import params as p

    register(
        "corruption_robustness",
        "asklepios_diffusion_tta.robustness:CorruptionRobustness",
        p.CorruptionRobustnessParams,
    )
    register("denoising", "asklepios_diffusion_tta.source_diffusion:DenoisingError", EmptyParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the corrupted (-C) dataset wrapper."""
    from asklepios_diffusion_tta import params as p

    register(
        "corrupted", "asklepios_diffusion_tta.corrupted:CorruptedDataset", p.CorruptedDatasetParams
    )


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the source diffusion ε-predictor."""
    from asklepios_diffusion_tta import params as p

    register(
        "source_unet", "asklepios_diffusion_tta.source_diffusion:SourceUNet", p.SourceUNetParams
    )


@hookimpl
def register_losses(register: Register) -> None:
    """Register the ε-MSE (+ L_vlb) loss of the source diffusion model."""
    from asklepios_diffusion_tta import params as p

    register("eps_mse", "asklepios_diffusion_tta.source_diffusion:EpsMSE", p.EpsMSEParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the DDPM training step of the source diffusion model."""
    from asklepios_diffusion_tta import params as p

    register(
        "train_source_diffusion",
        "asklepios_diffusion_tta.source_diffusion:DiffusionTrainer",
        p.DiffusionTrainerParams,
    )


@hookimpl
def stage_end(run: RunState, stage: str, summary: Mapping[str, Any]) -> None:
    """Save a trained source_unet as a diffusers folder ``source_diffusion`` in the run dir.

    Runs on rank 0 only and only when the stage's model is ``diffusion_tta.source_unet``, so a
    later stage's ``diffusion_tta.ddpm_adapter`` finds it under its default ``model_dir``.
    """
    model = getattr(run, "model", None)
    model = getattr(model, "module", model)
    if not run.is_main or type(model).__name__ != "SourceUNet":
        return
    from asklepios_diffusion_tta.source_diffusion import SourceUNet

    if isinstance(model, SourceUNet):
        model.save_pretrained(f"{run.output_dir}/source_diffusion")
