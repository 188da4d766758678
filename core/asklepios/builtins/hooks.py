"""Registration hooks of plugin ``core``: the built-in components of every kind.

Each hook imports the params models (pydantic and the SDK only) inside its body and names every
implementation lazily (``"asklepios.builtins.losses:CrossEntropyLoss"``), so importing this module
and registering the built-ins import no torch; a class is imported when its component is built.
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
    """Register ``core.timm``, ``core.mlp`` and ``core.open_clip``."""
    from asklepios.builtins import params as p

    register("timm", "asklepios.builtins.backbones:TimmBackbone", p.TimmBackboneParams)
    register("mlp", "asklepios.builtins.backbones:MLPBackbone", p.MLPBackboneParams)
    register("open_clip", "asklepios.builtins.open_clip:OpenCLIPBackbone", p.OpenCLIPBackboneParams)


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``core.cross_entropy``, ``core.bce`` and ``core.mse``."""
    from asklepios.builtins import params as p

    register(
        "cross_entropy", "asklepios.builtins.losses:CrossEntropyLoss", p.CrossEntropyLossParams
    )
    register("bce", "asklepios.builtins.losses:BCELoss", p.BCELossParams)
    register("mse", "asklepios.builtins.losses:MSELoss", p.MSELossParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the per-sample image transforms built on torchvision.transforms.v2."""
    from asklepios.builtins import params as p

    register("to_tensor", "asklepios.builtins.augmentations:ToTensor", p.ToTensorParams)
    register("resize", "asklepios.builtins.augmentations:Resize", p.ResizeParams)
    register(
        "random_resized_crop",
        "asklepios.builtins.augmentations:RandomResizedCrop",
        p.RandomResizedCropParams,
    )
    register("center_crop", "asklepios.builtins.augmentations:CenterCrop", p.CenterCropParams)
    register("hflip", "asklepios.builtins.augmentations:HorizontalFlip", p.HorizontalFlipParams)
    register("vflip", "asklepios.builtins.augmentations:VerticalFlip", p.VerticalFlipParams)
    register("rotation", "asklepios.builtins.augmentations:Rotation", p.RotationParams)
    register("color_jitter", "asklepios.builtins.augmentations:ColorJitter", p.ColorJitterParams)
    register("normalize", "asklepios.builtins.augmentations:Normalize", p.NormalizeParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``core.classification``."""
    from asklepios.builtins import params as p

    register(
        "classification",
        "asklepios.builtins.evaluators:ClassificationEvaluator",
        p.ClassificationEvaluatorParams,
    )


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the built-in datasets: digits, image folder, CSV manifest, MedMNIST, tabular."""
    from asklepios.builtins import params as p

    register("digits", "asklepios.builtins.datasets:DigitsDataset", p.DigitsDatasetParams)
    register(
        "image_folder", "asklepios.builtins.datasets:ImageFolderDataset", p.ImageFolderDatasetParams
    )
    register("csv", "asklepios.builtins.datasets:CsvDataset", p.CsvDatasetParams)
    register("medmnist", "asklepios.builtins.datasets:MedMNISTDataset", p.MedMNISTDatasetParams)
    register("tabular", "asklepios.builtins.datasets:TabularDataset", p.TabularDatasetParams)
    register("clip_features", "asklepios.features:ClipFeatures", p.ClipFeaturesParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register ``core.supervised``."""
    from asklepios_sdk import EmptyParams

    register("supervised", "asklepios.builtins.trainers:SupervisedTrainer", EmptyParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register ``core.random`` (the default shuffle) and ``core.sequential``."""
    from asklepios_sdk import EmptyParams

    register("random", "asklepios.builtins.samplers:RandomSampler", EmptyParams)
    register("sequential", "asklepios.builtins.samplers:SequentialSampler", EmptyParams)
