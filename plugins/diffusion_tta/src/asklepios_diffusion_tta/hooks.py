"""Registration hooks of the ``diffusion_tta`` plugin; each imports its family module lazily."""

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
    from asklepios_diffusion_tta import corruptions

    register("corruptions", corruptions.build_corruption, corruptions.CorruptionParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the DDA input adapter and the self-ensembling wrapper."""
    from asklepios_diffusion_tta import ddpm_adapter, self_ensemble

    register("ddpm_adapter", ddpm_adapter.build_ddpm_adapter, ddpm_adapter.DDPMAdapterParams)
    register("self_ensemble", self_ensemble.build_self_ensemble, self_ensemble.SelfEnsembleParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the corruption-robustness and denoising-error evaluators."""
    from asklepios_diffusion_tta import robustness, source_diffusion

    register(
        "corruption_robustness",
        robustness.build_corruption_robustness,
        robustness.CorruptionRobustnessParams,
    )
    register("denoising", source_diffusion.build_denoising_error)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the corrupted (-C) dataset wrapper."""
    from asklepios_diffusion_tta import corrupted

    register("corrupted", corrupted.build_corrupted, corrupted.CorruptedParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the source diffusion ε-predictor."""
    from asklepios_diffusion_tta import source_diffusion as sd

    register("source_unet", sd.build_source_unet, sd.SourceUNetParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register the ε-MSE (+ L_vlb) loss of the source diffusion model."""
    from asklepios_diffusion_tta import source_diffusion as sd

    register("eps_mse", sd.build_eps_mse, sd.EpsMSELossParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the DDPM training step of the source diffusion model."""
    from asklepios_diffusion_tta import source_diffusion as sd

    register("train_source_diffusion", sd.build_diffusion_trainer, sd.DiffusionTrainerParams)


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
