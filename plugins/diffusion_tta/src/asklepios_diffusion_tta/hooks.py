"""Registration hooks of the ``diffusion_tta`` plugin; each imports its family module lazily."""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl

__all__ = [
    "register_adapters",
    "register_augmentations",
    "register_datasets",
    "register_evaluators",
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
    """Register the corruption-robustness evaluator."""
    from asklepios_diffusion_tta import robustness

    register(
        "corruption_robustness",
        robustness.build_corruption_robustness,
        robustness.CorruptionRobustnessParams,
    )


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the corrupted (-C) dataset wrapper."""
    from asklepios_diffusion_tta import corrupted

    register("corrupted", corrupted.build_corrupted, corrupted.CorruptedParams)
