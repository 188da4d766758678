"""Hooks of plugin ``panderm``: one ``register`` call per component, and ``record_metadata``.

The registration hooks import the params models only; every target is a lazy
``"module:Class"`` reference, imported when the component is built.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from asklepios_sdk import Register, hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import RunState

__all__ = [
    "record_metadata",
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
def register_backbones(register: Register) -> None:
    """Register the PanDerm ViT and its UperNet segmentation model."""
    from asklepios_panderm import params as p

    register("vit", "asklepios_panderm.vit:PanDermViT", p.PanDermViTParams)
    register("upernet", "asklepios_panderm.upernet:PanDermUperNet", p.PanDermUperNetParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the checkpoint loader and test-time augmentation."""
    from asklepios_panderm import params as p

    register(
        "checkpoint", "asklepios_panderm.checkpoint:PanDermCheckpoint", p.PanDermCheckpointParams
    )
    register("tta", "asklepios_panderm.tta:PanDermTTA", p.PanDermTTAParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the per-sample transforms and per-batch mixup/CutMix."""
    from asklepios_panderm import params as p

    register("eval_transform", "asklepios_panderm.transforms:EvalTransform", p.EvalTransformParams)
    register(
        "finetune_transform",
        "asklepios_panderm.transforms:FinetuneTransform",
        p.FinetuneTransformParams,
    )
    register("seg_transform", "asklepios_panderm.transforms:SegTransform", p.SegTransformParams)
    register("mixup_cutmix", "asklepios_panderm.augmentations:MixupCutmix", p.MixupCutmixParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the PanDerm dataset CSV."""
    from asklepios_panderm import params as p

    register("derm_csv", "asklepios_panderm.datasets:DermCsv", p.DermCsvParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register the label-fraction and class-balanced samplers."""
    from asklepios_panderm import params as p

    register(
        "label_fraction",
        "asklepios_panderm.samplers:LabelFractionSampler",
        p.LabelFractionSamplerParams,
    )
    register(
        "class_balanced",
        "asklepios_panderm.samplers:ClassBalancedSampler",
        p.ClassBalancedSamplerParams,
    )


@hookimpl
def register_losses(register: Register) -> None:
    """Register the fine-tuning, segmentation and (lineage) pretraining losses."""
    from asklepios_panderm import params as p

    register(
        "soft_target_ce",
        "asklepios_panderm.losses:SoftTargetCrossEntropy",
        p.SoftTargetCrossEntropyParams,
    )
    register(
        "label_smoothing_ce",
        "asklepios_panderm.losses:LabelSmoothingCrossEntropy",
        p.LabelSmoothingCrossEntropyParams,
    )
    register("pixel_ce", "asklepios_panderm.losses:PixelCrossEntropy", p.PixelCrossEntropyParams)
    register(
        "caev2_alignment",
        "asklepios_panderm.losses:CAEv2AlignmentLoss",
        p.CAEv2AlignmentLossParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the probes, the fine-tuning metric set and the segmentation scores."""
    from asklepios_panderm import params as p

    register("linear_probe", "asklepios_panderm.probes:LinearProbe", p.LinearProbeParams)
    register("knn", "asklepios_panderm.probes:KNNProbe", p.KNNProbeParams)
    register(
        "finetune_metrics", "asklepios_panderm.ftmetrics:FinetuneMetrics", p.FinetuneMetricsParams
    )
    register("seg_metrics", "asklepios_panderm.segmetrics:SegMetrics", p.SegMetricsParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the layer-decay fine-tuning trainer."""
    from asklepios_panderm import params as p

    register("finetune", "asklepios_panderm.trainers:FinetuneTrainer", p.FinetuneTrainerParams)


@hookimpl
def record_metadata(run: RunState) -> dict[str, Any] | None:
    """Return the PanDerm checkpoints this run loaded (path, sha256, tensor counts)."""
    module = sys.modules.get("asklepios_panderm.checkpoint")  # not imported: nothing loaded
    loaded = getattr(module, "LOADED", {}) if module is not None else {}
    records = [dict(r) for r in loaded.get(run.output_dir or "", [])]
    return {"checkpoints": records} if records else None
