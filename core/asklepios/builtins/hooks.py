"""Registration hooks of plugin ``core``: the built-in components of every kind.

Each hook imports its family module inside the function body, so importing this module costs
nothing (no torch).
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl

__all__ = [
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
    """Register ``core.timm`` and ``core.mlp``."""
    from asklepios.builtins import backbones, open_clip

    register("timm", backbones.TimmBackbone, backbones.TimmBackboneParams)
    register("mlp", backbones.MLPBackbone, backbones.MLPBackboneParams)
    register("open_clip", open_clip.build_open_clip, open_clip.OpenCLIPParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``core.cross_entropy``, ``core.bce`` and ``core.mse``."""
    from asklepios.builtins import losses

    register("cross_entropy", losses.CrossEntropyLoss, losses.CrossEntropyLossParams)
    register("bce", losses.BCELoss, losses.BCELossParams)
    register("mse", losses.MSELoss, losses.MSELossParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the per-sample image transforms built on torchvision.transforms.v2."""
    from asklepios.builtins import augmentations as aug

    register("to_tensor", aug.ToTensor, aug.ToTensorParams)
    register("resize", aug.Resize, aug.ResizeParams)
    register("random_resized_crop", aug.RandomResizedCrop, aug.RandomResizedCropParams)
    register("center_crop", aug.CenterCrop, aug.CenterCropParams)
    register("hflip", aug.HorizontalFlip, aug.FlipParams)
    register("vflip", aug.VerticalFlip, aug.FlipParams)
    register("rotation", aug.Rotation, aug.RotationParams)
    register("color_jitter", aug.ColorJitter, aug.ColorJitterParams)
    register("normalize", aug.Normalize, aug.NormalizeParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``core.classification``."""
    from asklepios.builtins import evaluators

    register(
        "classification",
        evaluators.ClassificationEvaluator,
        evaluators.ClassificationEvaluatorParams,
    )


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the built-in datasets: digits, image folder, CSV manifest, MedMNIST, tabular."""
    from asklepios import features
    from asklepios.builtins import datasets

    register("digits", datasets.DigitsDataset, datasets.DigitsDatasetParams)
    register("image_folder", datasets.ImageFolderDataset, datasets.ImageFolderDatasetParams)
    register("csv", datasets.CsvDataset, datasets.CsvDatasetParams)
    register("medmnist", datasets.MedMNISTDataset, datasets.MedMNISTDatasetParams)
    register("tabular", datasets.TabularDataset, datasets.TabularDatasetParams)
    register("clip_features", features.ClipFeatures, features.ClipFeaturesParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register ``core.supervised``."""
    from asklepios.builtins import trainers

    register("supervised", trainers.SupervisedTrainer)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register ``core.random`` (the default shuffle) and ``core.sequential``."""
    from asklepios.builtins import samplers

    register("random", samplers.RandomSampler)
    register("sequential", samplers.SequentialSampler)
