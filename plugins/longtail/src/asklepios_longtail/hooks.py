"""Registration hooks of the longtail plugin: each imports its family module when called.

Importing this module defines functions and nothing else: no torch, no component module.
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl

__all__ = [
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_samplers",
    "register_trainers",
]


@hookimpl
def register_losses(register: Register) -> None:
    """Register the long-tailed losses (re-weighting, logit adjustment, experts, metric)."""
    from asklepios_longtail.losses import LOSSES

    for name, (factory, params) in LOSSES.items():
        register(name, factory, params)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register the re-samplers (class-balanced, effective-number, FlexRS, switch, sqrt, ...)."""
    from asklepios_longtail.samplers import SAMPLERS

    for name, (factory, params) in SAMPLERS.items():
        register(name, factory, params)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the shot-group evaluator (many/medium/few, MONICA's group average, AUROC...)."""
    from asklepios_longtail.metrics import EVALUATORS

    for name, (factory, params) in EVALUATORS.items():
        register(name, factory, params)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the heads (cosine, causal-norm, DisAlign, LWS, BBN, cRT) and post-hoc adapters."""
    from asklepios_longtail.adapters import ADAPTERS
    from asklepios_longtail.posthoc import EVALUATION_ADAPTERS

    for name, (factory, params) in {**ADAPTERS, **EVALUATION_ADAPTERS}.items():
        register(name, factory, params)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the mixing augmentations (mixup, cutmix, remix) and MONICA's presets."""
    from asklepios_longtail.augmentations import AUGMENTATIONS
    from asklepios_longtail.transforms import SAMPLE_TRANSFORMS

    for name, (factory, params) in {**AUGMENTATIONS, **SAMPLE_TRANSFORMS}.items():
        register(name, factory, params)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the trainers (ERM with MONICA switches, SAM, BBN, NCM collection, BYOL)."""
    from asklepios_longtail.ssl import SSL_TRAINERS
    from asklepios_longtail.trainers import TRAINERS

    for name, (factory, params) in {**TRAINERS, **SSL_TRAINERS}.items():
        register(name, factory, params)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the long-tailed datasets (digits benchmark, MONICA split lists)."""
    from asklepios_longtail.datasets import DATASETS

    for name, (factory, params) in DATASETS.items():
        register(name, factory, params)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register SADE's multi-expert ResNet (also the backbone of RIDE)."""
    from asklepios_longtail.backbones import BACKBONES

    for name, (factory, params) in BACKBONES.items():
        register(name, factory, params)
