"""Params models of every ``ophnet`` component (pydantic and the SDK only: cheap to import).

Defaults follow the OphNet plugin specification: the OphNet2024 challenge label rule (count < 15
-> "Others" 51 / 106), the ActionFormer/TriDet feature grid (stride 16, 16 frames), truncation to
2,304 steps with ``trunc_thresh`` 0.5 and crop ratio [0.9, 1.0], ActivityNet mAP at tIoU
0.3:0.1:0.7, and MS-TCN's published settings (4 stages of 10 layers, 64 maps, lambda 0.15, tau 4).
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk.params import LocalDir, LocalFile, Params
from pydantic import Field, model_validator

__all__ = [
    "ActionFormerLossParams",
    "ActionFormerParams",
    "AnnotationsDatasetParams",
    "ChallengeLabelsParams",
    "MSTCNLossParams",
    "MSTCNParams",
    "PhaseRecognitionEvaluatorParams",
    "SyntheticSequencesParams",
    "TALFeaturesDatasetParams",
    "TALMapEvaluatorParams",
    "TruncateParams",
]

Level = Literal["phase", "operation"]

DEFAULT_SPLITS: dict[str, list[str]] = {"train": ["train"], "val": ["val"], "test": ["test"]}


def _check_splits(splits: dict[str, list[str]]) -> None:
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown or "train" not in splits:
        raise ValueError(
            f"splits maps asklepios splits (train, val, test; train required) to OphNet 'split' "
            f"values, got keys {sorted(splits)}"
        )
    empty = sorted(name for name, values in splits.items() if not values)
    if empty:
        raise ValueError(f"splits {empty} list no OphNet split value")


class _ChallengeRule(Params):
    """The OphNet2024 challenge label rule (shared by the loaders and the wrapper)."""

    min_count: int = Field(
        15, ge=1, description="A label with fewer rows than this (all splits) becomes 'Others'."
    )
    other_phase: int = Field(51, ge=0, description="Id of the phase 'Others' class.")
    other_operation: int = Field(106, ge=0, description="Id of the operation 'Others' class.")


class AnnotationsDatasetParams(_ChallengeRule):
    """Params of ``ophnet.annotations``."""

    file: LocalFile = Field(
        description="An OphNet2024 localisation CSV (loca_all, loca_challenge or "
        "loca_challenge_phase)."
    )
    surgery_file: LocalFile | None = Field(
        None, description="OphNet2024_surgery.csv: adds each video's surgery ids (first = primary)."
    )
    level: Level = Field("phase", description="Which label the segments carry.")
    label_space: Literal["all", "challenge"] = Field(
        "all",
        description="'challenge' applies the 'Others' remap (and, for phases, the consecutive "
        "merge) to the file's labels, as the released challenge files do.",
    )
    splits: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_SPLITS),
        description="asklepios split -> the OphNet 'split' values it takes.",
    )
    num_classes: int | None = Field(
        None, ge=1, description="Number of classes (default: 52/107 for challenge, else max id+1)."
    )

    @model_validator(mode="after")
    def _valid_splits(self) -> AnnotationsDatasetParams:
        _check_splits(self.splits)
        return self


class ChallengeLabelsParams(_ChallengeRule):
    """Params of ``ophnet.challenge_labels``."""

    merge: bool | None = Field(
        None,
        description="Merge consecutive segments of the same label (default: at phase level "
        "only, as OphNet2024_loca_challenge_phase.csv).",
    )


class TALFeaturesDatasetParams(_ChallengeRule):
    """Params of ``ophnet.tal_features``."""

    annotations: LocalFile = Field(
        description="ActivityNet-style JSON (OphNet2024_{phase,operation}.json), or a "
        "localisation CSV with video_info or default_fps."
    )
    features_dir: LocalDir = Field(description="Folder of per-video [T, C] feature files.")
    file_ext: Literal[".npy", ".pkl"] = Field(".npy", description="Feature file extension.")
    file_prefix: str = Field("", description="Prefix of every feature file name.")
    trust_pickle: bool = Field(
        False,
        description="Read .pkl feature files. Unpickling runs code stored in the file: only "
        "for files you trust; convert them once with 'asklepios ophnet pkl-to-npy'.",
    )
    feat_stride: int = Field(16, ge=1, description="Frames between consecutive feature steps.")
    num_frames: int = Field(16, ge=1, description="Frames each feature step sees.")
    downsample_rate: int = Field(1, ge=1, description="Keep every k-th feature step.")
    default_fps: float | None = Field(
        None, gt=0, description="Use this fps for every video instead of the annotation's."
    )
    video_info: LocalFile | None = Field(
        None, description="For CSV annotations: a CSV with video_id,fps,duration."
    )
    level: Level = Field("phase", description="For CSV annotations: which label to use.")
    label_space: Literal["all", "challenge"] = Field(
        "all", description="For CSV annotations: 'challenge' applies the challenge rule."
    )
    num_classes: int | None = Field(
        None, ge=1, description="Number of segment classes (default: the largest label id + 1)."
    )
    input_dim: int | None = Field(None, ge=1, description="Expected feature width (checked).")
    splits: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_SPLITS),
        description="asklepios split -> the annotation 'subset' values it takes.",
    )
    missing_features: Literal["error", "skip"] = Field(
        "error",
        description="A video without a feature file: 'error' lists them; 'skip' drops them "
        "(the reference code's behaviour).",
    )
    frame_labels: bool = Field(True, description="Add per-step labels (for MS-TCN).")
    background: Literal["class", "ignore"] = Field(
        "class",
        description="Steps outside every segment: an extra last class, or ignored (-100).",
    )
    multiple_of: int = Field(1, ge=1, description="Pad each batch's length to a multiple.")

    @model_validator(mode="after")
    def _valid_splits(self) -> TALFeaturesDatasetParams:
        _check_splits(self.splits)
        return self


class SyntheticSequencesParams(Params):
    """Params of ``ophnet.synthetic``."""

    num_classes: int = Field(4, ge=1, description="Segment classes.")
    feature_dim: int = Field(32, ge=1, description="Feature width C.")
    train: int = Field(48, ge=1, description="Training videos.")
    val: int = Field(16, ge=1, description="Validation videos.")
    test: int = Field(16, ge=1, description="Test videos.")
    min_length: int = Field(64, ge=2, description="Shortest video, in steps.")
    max_length: int = Field(160, ge=2, description="Longest video, in steps.")
    segments: tuple[int, int] = Field((2, 4), description="Segments per video (inclusive).")
    segment_length: tuple[int, int] = Field((6, 16), description="Segment length in steps.")
    shift: float = Field(
        0.3, ge=0, description="Per-dimension std of the class-specific mean shift."
    )
    noise: float = Field(1.0, gt=0, description="Std of the per-step Gaussian noise.")
    data_seed: int = Field(0, description="Seed of the data (independent of the run's seed).")
    frame_labels: bool = Field(True, description="Add per-step labels.")
    background: Literal["class", "ignore"] = Field(
        "class", description="Steps outside every segment: an extra last class, or ignored."
    )

    @model_validator(mode="after")
    def _valid_ranges(self) -> SyntheticSequencesParams:
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError("need 2 <= min_length <= max_length")
        low, high = self.segment_length
        if not 1 <= low <= high:
            raise ValueError("need 1 <= segment_length[0] <= segment_length[1]")
        if not 1 <= self.segments[0] <= self.segments[1]:
            raise ValueError("need 1 <= segments[0] <= segments[1]")
        if self.segments[1] * high > self.min_length:
            raise ValueError("segments[1] * segment_length[1] must fit into min_length")
        return self


class TruncateParams(Params):
    """Params of ``ophnet.truncate``."""

    max_seq_len: int = Field(2304, ge=1, description="Longest sequence kept, in steps.")
    trunc_thresh: float = Field(
        0.5, ge=0, le=1, description="Keep a cut segment if this fraction of it survives."
    )
    crop_ratio: tuple[float, float] | None = Field(
        (0.9, 1.0),
        description="Shorter sequences are cropped to a random fraction in this range; null: "
        "left whole.",
    )
    max_trials: int = Field(200, ge=1, description="Windows tried to keep at least one segment.")
    no_trunc: bool = Field(False, description="Only accept windows that cut no segment.")

    @model_validator(mode="after")
    def _valid_ratio(self) -> TruncateParams:
        if self.crop_ratio is not None and not 0 < self.crop_ratio[0] <= self.crop_ratio[1] <= 1:
            raise ValueError("crop_ratio must satisfy 0 < low <= high <= 1")
        return self


class MSTCNParams(Params):
    """Params of ``ophnet.mstcn``."""

    num_stages: int = Field(4, ge=1, description="Stages (the first reads features).")
    num_layers: int = Field(10, ge=1, description="Dilated residual layers per stage.")
    num_f_maps: int = Field(64, ge=1, description="Feature maps per layer.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout inside each residual layer.")
    num_classes: int | None = Field(None, ge=1, description="Outputs (default: the data's).")
    input_dim: int | None = Field(None, ge=1, description="Feature width (default: the data's).")


class MSTCNLossParams(Params):
    """Params of ``ophnet.mstcn_loss``."""

    smooth_weight: float = Field(0.15, ge=0, description="lambda of the smoothing term.")
    tau: float = Field(4.0, gt=0, description="Truncation of the log-probability differences.")


class TALMapEvaluatorParams(Params):
    """Params of ``ophnet.tal_map``."""

    tious: list[float] = Field(
        default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7],
        min_length=1,
        description="tIoU thresholds; the average over them is 'average'.",
    )
    duplicate_tol: float = Field(
        1e-3, ge=0, description="Ground truth of one label within this many seconds is one."
    )
    faithful: bool = Field(
        False,
        description="Predicted labels outside the ground truth's classes stay un-remapped, "
        "as the reference code's DataFrame.replace leaves them (default: dropped).",
    )
    units: Literal["seconds", "steps"] = Field(
        "seconds",
        description="Match in seconds (step_seconds/time_offset of the batch) or in steps.",
    )

    @model_validator(mode="after")
    def _valid_tious(self) -> TALMapEvaluatorParams:
        if any(not 0 < t <= 1 for t in self.tious):
            raise ValueError("every tIoU threshold lies in (0, 1]")
        return self


class PhaseRecognitionEvaluatorParams(Params):
    """Params of ``ophnet.phase_recognition``."""

    num_classes: int | None = Field(None, ge=1, description="Classes (default: the data's).")
    labels: list[int] | None = Field(
        None, description="The fixed label list of the macro scores (default: 0..K-1)."
    )


REGRESSION_RANGES: list[tuple[float, float]] = [
    (0, 4),
    (4, 8),
    (8, 16),
    (16, 32),
    (32, 64),
    (64, 10000),
]


class ActionFormerParams(Params):
    """Params of ``ophnet.actionformer`` (defaults: OphNet's ActionFormer operation config).

    Where OphNet's config (``medical_videomae_operation.yaml``) leaves a value out, the default
    is ActionFormer's (``libs/core/config.py`` of ``happyharrycn/actionformer_release``).
    """

    num_classes: int | None = Field(
        None,
        ge=1,
        description="Action classes (default: the data's segment classes, no background).",
    )
    input_dim: int | None = Field(None, ge=1, description="Feature width (default: the data's).")
    arch: tuple[int, int, int] = Field(
        (2, 2, 5),
        description="(embedding convs, stem transformer blocks, branch blocks each downsampling "
        "x2); pyramid levels = branch blocks + 1 (ActionFormer default).",
    )
    embd_dim: int = Field(
        512, ge=1, description="Width of the embedding, transformer and pyramid (ActionFormer)."
    )
    embd_kernel_size: int = Field(3, ge=1, description="Embedding conv kernel (ActionFormer).")
    embd_with_ln: bool = Field(True, description="LayerNorm after each embedding conv.")
    n_head: int = Field(4, ge=1, description="Attention heads (ActionFormer default).")
    mha_win_size: int = Field(
        19,
        description="Local attention window (keys within +-window//2 steps); <= 1: global "
        "attention (OphNet's ActionFormer config: 19).",
    )
    mlp_ratio: int = Field(4, ge=1, description="Transformer MLP width / embd_dim (ActionFormer).")
    fpn_with_ln: bool = Field(True, description="LayerNorm on every pyramid level (identity FPN).")
    head_dim: int = Field(512, ge=1, description="Width of the heads (ActionFormer).")
    head_kernel_size: int = Field(3, ge=1, description="Kernel of the head convs (ActionFormer).")
    head_num_layers: int = Field(
        3, ge=1, description="Conv layers per head, the output layer included (ActionFormer)."
    )
    head_with_ln: bool = Field(True, description="LayerNorm in the heads (ActionFormer).")
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout of projections and MLPs (ActionFormer: 0)."
    )
    attn_dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout of the attention weights (ActionFormer: 0)."
    )
    drop_path: float = Field(
        0.1, ge=0, lt=1, description="Stochastic depth of the transformer blocks (ActionFormer)."
    )
    regression_range: list[tuple[float, float]] = Field(
        default_factory=lambda: list(REGRESSION_RANGES),
        description="Per pyramid level, the range of max(left, right) distances (feature steps) "
        "a point regresses (ActionFormer and OphNet configs).",
    )
    cls_prior_prob: float = Field(
        0.01, gt=0, lt=1, description="Initial foreground probability of the classifier."
    )
    pre_nms_thresh: float = Field(
        0.001, ge=0, lt=1, description="Scores kept before NMS (ActionFormer default)."
    )
    pre_nms_topk: int = Field(
        2000, ge=1, description="Candidates kept per pyramid level before NMS (OphNet config)."
    )
    duration_thresh: float = Field(
        0.05, ge=0, description="Shortest segment kept, in feature steps (ActionFormer)."
    )
    nms_method: Literal["soft", "hard", "none"] = Field(
        "soft", description="Gaussian Soft-NMS, plain NMS or none (ActionFormer: soft)."
    )
    multiclass_nms: bool = Field(
        True, description="Suppress within each class only (OphNet config: true)."
    )
    iou_threshold: float = Field(
        0.1, gt=0, le=1, description="tIoU at which plain NMS suppresses (ActionFormer)."
    )
    nms_sigma: float = Field(
        0.5, gt=0, description="Soft-NMS decay exp(-tIoU^2 / sigma) (ActionFormer: 0.5)."
    )
    min_score: float = Field(
        0.001, ge=0, lt=1, description="Segments scored below this after NMS are dropped (OphNet)."
    )
    max_seg_num: int = Field(
        200, ge=1, description="Segments kept per video (OphNet's operation config: 200)."
    )
    voting_thresh: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Segment voting tIoU after class-agnostic NMS; 0: off (OphNet config: 0.7; "
        "unused with multiclass_nms).",
    )

    @model_validator(mode="after")
    def _valid_levels(self) -> ActionFormerParams:
        levels = self.arch[2] + 1
        if len(self.regression_range) != levels:
            raise ValueError(
                f"regression_range needs one (low, high) per pyramid level: arch[2] + 1 = "
                f"{levels}, got {len(self.regression_range)}"
            )
        if min(self.arch) < 0 or self.arch[0] < 1:
            raise ValueError("arch needs at least one embedding conv and no negative counts")
        if self.embd_dim % self.n_head:
            raise ValueError(f"embd_dim {self.embd_dim} must be divisible by n_head {self.n_head}")
        if self.embd_kernel_size % 2 == 0 or self.head_kernel_size % 2 == 0:
            raise ValueError("embd_kernel_size and head_kernel_size must be odd")
        return self


class ActionFormerLossParams(Params):
    """Params of ``ophnet.actionformer_loss`` (OphNet's ActionFormer config, else ActionFormer)."""

    center_sample: Literal["radius", "none"] = Field(
        "radius", description="Centre sampling of positive points (ActionFormer, OphNet)."
    )
    center_sample_radius: float = Field(
        1.5, gt=0, description="Centre-sampling radius in strides of the level (OphNet config)."
    )
    loss_weight: float = Field(
        1.0, gt=0, description="Weight of the DIoU regression loss (ActionFormer: 1.0)."
    )
    init_loss_norm: float = Field(
        100.0, gt=0, description="Initial positive count of the normaliser (OphNet config: 100)."
    )
    loss_norm_momentum: float = Field(
        0.9, ge=0, lt=1, description="EMA momentum of the positive count (ActionFormer: 0.9)."
    )
    focal_alpha: float = Field(0.25, ge=0, le=1, description="Focal loss alpha (ActionFormer).")
    focal_gamma: float = Field(2.0, ge=0, description="Focal loss gamma (ActionFormer).")
