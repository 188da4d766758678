"""Params models of the built-in components of plugin ``core``, one ``<Class>Params`` each.

This module imports pydantic and the SDK only (no torch), so registering the built-ins and
validating a config cost no heavy import; the component classes in the family modules
(:mod:`asklepios.builtins.losses`, ...) import their params from here. Components without params
register :class:`asklepios_sdk.EmptyParams`. Files and folders are typed ``LocalFile`` and
``LocalDir``: relative to the config file that names them, and checked by ``validate``.
"""

from __future__ import annotations

from typing import Any, Literal

from asklepios_sdk import Params
from asklepios_sdk.params import LocalDir, LocalFile
from pydantic import ConfigDict, Field, PositiveInt, field_validator, model_validator

__all__ = [
    "BCELossParams",
    "CenterCropParams",
    "ClassificationEvaluatorParams",
    "ClipFeaturesParams",
    "ColorJitterParams",
    "CrossEntropyLossParams",
    "CsvDatasetParams",
    "DigitsDatasetParams",
    "FlipParams",
    "HorizontalFlipParams",
    "ImageFolderDatasetParams",
    "MLPBackboneParams",
    "MSELossParams",
    "MedMNISTDatasetParams",
    "NormalizeParams",
    "OpenCLIPBackboneParams",
    "RandomResizedCropParams",
    "ResizeParams",
    "RotationParams",
    "TabularDatasetParams",
    "TimmBackboneParams",
    "ToTensorParams",
    "VerticalFlipParams",
]


# -- backbones -----------------------------------------------------------------------------------


class TimmBackboneParams(Params):
    """Params of ``core.timm``."""

    model_name: str = Field("resnet18", description="Any name from timm.list_models().")
    num_classes: PositiveInt | None = Field(None, description="Default: the dataset's classes.")
    in_chans: PositiveInt | None = Field(None, description="Default: the dataset's channels, or 3.")
    pretrained_file: LocalFile | None = Field(
        None, description="Local weights file loaded by timm (adapts head and input channels)."
    )
    drop_rate: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for timm.create_model."
    )


class MLPBackboneParams(Params):
    """Params of ``core.mlp``."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [128], description="Hidden widths.")
    dropout: float = Field(0.0, ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    num_classes: PositiveInt | None = Field(None, description="Default: the dataset's classes.")
    in_features: PositiveInt | None = Field(
        None, description="Input width; default: the dataset's features or C*H*W of its images."
    )


class OpenCLIPBackboneParams(Params):
    """Params of ``core.open_clip``."""

    model: str = Field(
        "ViT-B-32",
        description="open_clip architecture name (open_clip.list_models()), or 'local-dir:PATH'.",
    )
    model_config = ConfigDict(protected_namespaces=())

    model_cfg: dict[str, Any] | None = Field(
        None,
        description="Custom architecture {embed_dim, vision_cfg, text_cfg}; 'model' is a label.",
    )
    pretrained_file: LocalFile | None = Field(
        None, description="Local open_clip / OpenAI checkpoint (.pt, .bin, .safetensors)."
    )
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag, used only if already in the local cache."
    )
    cache_dir: str | None = Field(
        None, description="Cache directory searched for 'pretrained' (default: open_clip's)."
    )
    random_init: bool = Field(
        False, description="Allow random weights when no checkpoint is given (tests, smoke runs)."
    )
    frozen: bool = Field(True, description="Freeze both towers and keep them in eval mode.")
    inputs: Literal["image", "features"] = Field(
        "image", description="'features': the batch carries cached image features, not images."
    )
    preprocess: bool = Field(
        True, description="Resize images to the model's size and apply its mean/std on the device."
    )
    class_prompts: list[str] = Field(
        default_factory=lambda: ["a photo of a {}."],
        description="Templates for the zero-shot logits ('{}' is the class name), averaged.",
    )

    @model_validator(mode="after")
    def _one_weight_source(self) -> OpenCLIPBackboneParams:
        if self.pretrained_file and self.pretrained:
            raise ValueError(
                "give either 'pretrained_file' or 'pretrained' (a cached tag), not both"
            )
        if not self.class_prompts or any("{}" not in t for t in self.class_prompts):
            raise ValueError("every entry of 'class_prompts' needs a '{}' for the class name")
        return self


# -- losses --------------------------------------------------------------------------------------


class CrossEntropyLossParams(Params):
    """Params of ``core.cross_entropy``."""

    class_weights: Literal["balanced"] | list[float] | None = Field(
        None, description="Per-class weights, or 'balanced' for n / (K * n_k)."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class BCELossParams(Params):
    """Params of ``core.bce``."""

    pos_weight: list[float] | None = Field(None, description="Weight of positives per output.")


class MSELossParams(Params):
    """Params of ``core.mse``."""

    output_key: str = Field("logits", description="Model output holding the prediction.")
    target_key: str = Field("label", description="Batch key holding the regression target.")


# -- augmentations -------------------------------------------------------------------------------


class ToTensorParams(Params):
    """Params of ``core.to_tensor``."""

    scale: bool = Field(True, description="Scale integer images to [0, 1].")


class ResizeParams(Params):
    """Params of ``core.resize``."""

    size: PositiveInt | list[PositiveInt] = Field(
        description="Output size, int or [height, width]."
    )
    antialias: bool = True


class RandomResizedCropParams(Params):
    """Params of ``core.random_resized_crop``."""

    size: PositiveInt | list[PositiveInt]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


class CenterCropParams(Params):
    """Params of ``core.center_crop``."""

    size: PositiveInt | list[PositiveInt]


class FlipParams(Params):
    """Params shared by the random flips: the probability of flipping."""

    p: float = Field(0.5, ge=0, le=1, description="Probability of flipping.")


class HorizontalFlipParams(FlipParams):
    """Params of ``core.hflip``."""


class VerticalFlipParams(FlipParams):
    """Params of ``core.vflip``."""


class RotationParams(Params):
    """Params of ``core.rotation``."""

    degrees: float = Field(15.0, ge=0, description="Rotate by an angle in [-degrees, degrees].")
    fill: float = 0.0


class ColorJitterParams(Params):
    """Params of ``core.color_jitter`` (0 leaves that property unchanged)."""

    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)


class NormalizeParams(Params):
    """Params of ``core.normalize`` (defaults: ImageNet statistics)."""

    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])


# -- evaluators ----------------------------------------------------------------------------------


class ClassificationEvaluatorParams(Params):
    """Params of ``core.classification``."""

    num_classes: PositiveInt | None = Field(None, description="Default: the dataset's classes.")
    ece_bins: PositiveInt = Field(15, description="Bins of the expected calibration error.")
    confusion_matrix: bool = Field(True, description="Report the confusion matrix (for plots).")


# -- datasets ------------------------------------------------------------------------------------


class DigitsDatasetParams(Params):
    """Params of ``core.digits``."""

    image_size: PositiveInt = Field(8, description="Upscale the 8x8 digits to this size.")
    channels: Literal[1, 3] = Field(1, description="Repeat the grey channel to 3 when 3.")
    imbalance_ratio: float = Field(
        1.0, ge=1, description="Head/tail size ratio of the training split (1 = as bundled)."
    )
    test_per_class: PositiveInt = Field(40, description="Balanced held-out test size per class.")
    val_per_class: PositiveInt = Field(15, description="Balanced validation size per class.")
    seed: int = Field(0, description="Seed of the split (independent of the run's seed).")


class ImageFolderDatasetParams(Params):
    """Params of ``core.image_folder``."""

    root: LocalDir = Field(description="Folder with train/val/test sub-folders, or class folders.")
    mode: Literal["RGB", "L"] = Field("RGB", description="PIL mode images are converted to.")
    image_size: PositiveInt | list[PositiveInt] | None = Field(
        None, description="Resize every image on load (needed for batching mixed sizes)."
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="When root has only class folders.")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="When root has only class folders.")
    seed: int = 0


class CsvDatasetParams(Params):
    """Params of ``core.csv``."""

    path: LocalFile = Field(description="CSV manifest with one row per image.")
    root: LocalDir | None = Field(
        None, description="Folder relative image paths start from (default: the CSV's folder)."
    )
    path_column: str = "path"
    label_column: str = "label"
    split_column: str | None = Field(
        None, description="Column with train/val/test per row; default: split by fractions."
    )
    mode: Literal["RGB", "L"] = "RGB"
    image_size: PositiveInt | list[PositiveInt] | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0


class MedMNISTDatasetParams(Params):
    """Params of ``core.medmnist``."""

    path: LocalFile = Field(description="Local MedMNIST .npz file, e.g. ~/.medmnist/pathmnist.npz.")
    as_rgb: bool = Field(False, description="Repeat grey images to 3 channels.")


class TabularDatasetParams(Params):
    """Params of ``core.tabular``."""

    path: LocalFile = Field(description="CSV file with one row per sample.")
    target: str = Field(description="Column to predict.")
    features: list[str] | None = Field(None, description="Feature columns; default: all others.")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classification when the target is not numeric or integer."
    )
    split_column: str | None = None
    standardize: bool = Field(True, description="Scale features by training mean and std.")
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> TabularDatasetParams:
        if self.features is not None and self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed in features")
        return self


class ClipFeaturesParams(Params):
    """Params of ``core.clip_features``."""

    clip: OpenCLIPBackboneParams = Field(
        default_factory=OpenCLIPBackboneParams, description="The frozen core.open_clip encoder."
    )
    cache_dir: str = Field("~/.cache/asklepios/features", description="Feature cache directory.")
    batch_size: int = Field(64, ge=1, description="Images encoded per forward pass.")
    device: str = Field("cpu", description="Device used for encoding ('cpu', 'cuda', 'cuda:N').")
    num_workers: int = Field(0, ge=0, description="DataLoader workers reading images to encode.")
    prompt_sets: dict[str, list[str]] = Field(
        default_factory=lambda: {"source": ["a photo of a {}."]},
        description="Named lists of templates ('{}' = class name); each set is averaged.",
    )
    dataset_key: str | None = Field(
        None, description="Identity of the wrapped dataset in the cache key (default: fingerprint)."
    )

    @field_validator("prompt_sets")
    @classmethod
    def _templates_have_placeholders(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, templates in value.items():
            if not templates or any("{}" not in t for t in templates):
                raise ValueError(f"prompt set {name!r}: every template needs a '{{}}' placeholder")
        return value
