"""The config envelope: every section of an experiment config, validated without importing plugins.

Components are written ``{type: <plugin-id>.<name>, ...params}``: :class:`ComponentSpec` keeps the
``type`` and carries the params as extra keys, which phase 2 of validation checks against the
component's own params model. Everything else is closed (``extra="forbid"``).
"""

from __future__ import annotations

from typing import Any, Literal

from asklepios_sdk import WeightsSpec
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

__all__ = [
    "ComponentSpec",
    "DataConfig",
    "ExperimentConfig",
    "GenerateConfig",
    "InitFrom",
    "LoaderConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "StageConfig",
    "TrainConfig",
    "TransformsConfig",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSpec(BaseModel):
    """One component: its id in ``type`` and its params as the remaining keys."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Component id, '<plugin-id>.<name>' (a bare name if unique).")
    weights: WeightsSpec | None = Field(
        None, description="Weights applied after construction (backbones and adapters)."
    )

    @property
    def params(self) -> dict[str, Any]:
        """Return the params written next to ``type`` (everything but ``type`` and ``weights``)."""
        return dict(self.model_extra or {})


class LoaderConfig(_Section):
    """DataLoader settings shared by every split (``eval_batch_size`` for val/test)."""

    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt | None = None
    num_workers: int = Field(0, ge=0)
    pin_memory: bool | None = Field(None, description="Default: on when training on CUDA.")
    drop_last: bool = Field(
        False,
        description="Drop every incomplete last training batch. Without it, only a last batch "
        "of a single sample (per rank; over all ranks under SyncBatchNorm) is dropped.",
    )
    persistent_workers: bool = False


class TransformsConfig(_Section):
    """Per-sample augmentations, run in DataLoader workers; ``eval`` also serves val and test."""

    train: list[ComponentSpec] = Field(default_factory=list)
    eval: list[ComponentSpec] = Field(default_factory=list)


class DataConfig(_Section):
    """Where samples come from and how they reach the model."""

    dataset: ComponentSpec
    wrappers: list[ComponentSpec] = Field(
        default_factory=list, description="Dataset wrappers applied in list order."
    )
    sampler: ComponentSpec | None = Field(None, description="Training sampler; default: shuffle.")
    transforms: TransformsConfig = Field(default_factory=TransformsConfig)
    batch_transforms: list[ComponentSpec] = Field(
        default_factory=list, description="Per-batch augmentations, on the device, training only."
    )
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    verify: Literal["auto", "none", "exists", "headers", "full"] = Field(
        "auto",
        description="Pre-flight check of every file the dataset lists, before training: 'exists', "
        "'headers' (image headers readable), 'full' (decode every image), 'none'. 'auto': "
        "'headers' up to 20000 files, 'exists' above.",
    )


class ModelConfig(_Section):
    """The backbone and the adapters applied on top of it, in list order."""

    backbone: ComponentSpec
    adapters: list[ComponentSpec] = Field(default_factory=list)


class OptimizerConfig(BaseModel):
    """A ``torch.optim`` optimizer by name; other keys are its keyword arguments."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("adamw", description="torch.optim class name, case-insensitive (sgd, adamw).")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)

    @property
    def kwargs(self) -> dict[str, Any]:
        """Return the extra keyword arguments (momentum, betas, nesterov, ...)."""
        return dict(self.model_extra or {})


class ScheduleConfig(_Section):
    """Learning-rate schedule with an optional linear warm-up, per optimiser step or per epoch."""

    name: Literal["constant", "cosine", "step", "multistep", "linear"] = "constant"
    interval: Literal["step", "epoch"] = Field(
        "step",
        description="'step': advance after every optimiser step; 'epoch': set once at the start "
        "of each epoch (warm-up and decay in whole epochs), whatever number of optimiser steps "
        "a trainer takes per batch.",
    )
    warmup_epochs: float = Field(0.0, ge=0)
    warmup_start_factor: float = Field(0.1, gt=0, le=1)
    min_lr: float = Field(
        0.0, ge=0, description="Final learning rate of the cosine and linear schedules."
    )
    constant_epochs: float = Field(
        0.0, ge=0, description="Epochs at the base rate before the linear decay starts ('linear')."
    )
    step_size: PositiveInt = Field(30, description="Epochs between decays ('step').")
    milestones: list[int] = Field(default_factory=list, description="Decay epochs ('multistep').")
    gamma: float = Field(0.1, gt=0)


class MonitorConfig(_Section):
    """Which metric selects the best checkpoint; ``mode`` defaults to the evaluator's direction.

    A stage that names its own ``metric`` without ``mode`` takes that metric's direction, not
    the base config's ``mode``.
    """

    metric: str | None = Field(
        None, description="'<evaluator-name>/<key>', e.g. 'classification/balanced_accuracy'."
    )
    mode: Literal["max", "min"] | None = None


class TrainConfig(_Section):
    """Loop settings: epochs, evaluation cadence, device and numerics."""

    epochs: int = Field(10, ge=0)
    eval_every: PositiveInt = 1
    device: str = Field(
        "auto",
        description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'; "
        "one device for the whole run.",
    )
    amp: Literal[False, "fp16", "bf16"] | bool = False
    grad_clip: float | None = Field(None, gt=0, description="Max global gradient norm.")
    accumulate: PositiveInt = Field(1, description="Batches per optimiser step.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation over train+val.")
    deterministic: bool = True
    log_every: PositiveInt = 10
    nonfinite: Literal["stop", "skip_batch", "warn"] = Field(
        "stop",
        description="On a NaN/Inf training loss: 'stop' the run (exit 1, the last epoch "
        "checkpoint stays the resume point), 'skip_batch' (no update from it), or 'warn'.",
    )
    sync_batchnorm: bool | None = Field(
        None, description="Synchronise BatchNorm statistics across ranks; default: on under DDP."
    )


class InitFrom(_Section):
    """Initialise a stage from a previous stage's checkpoint."""

    stage: str
    checkpoint: Literal["best", "last"] = "best"


class GenerateConfig(_Section):
    """Make this stage generate a dataset instead of training (``asklepios_sdk.synthesis``).

    The stage's model generates one item per request of ``split``; items go to
    ``<run>/generated/<stage>`` as they are made, so a resumed run generates only the missing
    ones. The stage trains nothing (its ``train.epochs`` is taken as 0).
    """

    split: str = Field("train", description="Split of the stage's dataset holding the requests.")
    batch_size: PositiveInt | None = Field(
        None, description="Requests per generate call; default: data.loader.eval_batch_size."
    )


class StageConfig(BaseModel):
    """A named stage: its own settings plus partial sections merged key-wise over the base config.

    The overridable sections are ``data``, ``model``, ``loss``, ``optimizer``, ``optimizers``,
    ``schedule``, ``evaluators``, ``trainer`` and ``train``; lists replace, mappings merge.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    init_from: InitFrom | None = None
    freeze: list[str] = Field(
        default_factory=list, description="fnmatch patterns of parameter names to freeze."
    )
    replace_head: bool = Field(False, description="Give the backbone a fresh classifier.")
    generate: GenerateConfig | None = Field(
        None, description="Generate a dataset with the stage's model instead of training."
    )
    data: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    optimizers: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    evaluators: list[dict[str, Any]] | None = None
    trainer: dict[str, Any] | None = None
    train: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_path_segment(cls, value: str) -> str:
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError("stage names use letters, digits, '-' and '_' only")
        return value


class ExperimentConfig(_Section):
    """A whole experiment. ``extends`` is resolved while loading and never reaches this model."""

    name: str = Field(
        description="Experiment name; the run directory is <output_dir>/<name>-<time>."
    )
    seed: int = 0
    output_dir: str = "runs"
    requires: dict[str, str] = Field(
        default_factory=dict,
        description="Plugin id -> version specifier, e.g. {longtail: '>=0.1'}.",
    )
    data: DataConfig
    model: ModelConfig
    loss: ComponentSpec | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    optimizers: dict[str, OptimizerConfig] = Field(
        default_factory=dict, description="Optimizers of extra parameter groups a trainer names."
    )
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    evaluators: list[ComponentSpec] = Field(default_factory=list)
    trainer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(type="core.supervised"))
    train: TrainConfig = Field(default_factory=TrainConfig)
    stages: list[StageConfig] = Field(default_factory=list)
    tracking: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of tracker plugins by plugin id (tracking.mlflow.tracking_uri), "
        "each checked with the params model the plugin registers through register_settings. "
        "Installed trackers run with their defaults when the config has no entry for them.",
    )
