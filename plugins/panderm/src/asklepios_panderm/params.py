"""Params models of every ``panderm`` component (pydantic and the SDK only: cheap to import).

Defaults are PanDerm's released code and recommended configuration (spec ``panderm.md``); the
section of the spec that fixes each default is named in its description.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from asklepios_sdk.params import LocalDir, LocalFile
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

__all__ = [
    "CAEv2AlignmentLossParams",
    "ClassBalancedSamplerParams",
    "DermCsvParams",
    "EvalTransformParams",
    "FinetuneMetricsParams",
    "FinetuneTrainerParams",
    "FinetuneTransformParams",
    "KNNProbeParams",
    "LabelFractionSamplerParams",
    "LabelSmoothingCrossEntropyParams",
    "LinearProbeParams",
    "MixupCutmixParams",
    "PanDermCheckpointParams",
    "PanDermTTAParams",
    "PanDermUperNetParams",
    "PanDermViTParams",
    "PixelCrossEntropyParams",
    "SegMetricsParams",
    "SegTransformParams",
    "SoftTargetCrossEntropyParams",
]

Std = Literal["panderm", "imagenet"]
_STD = (
    "Normalisation std: 'panderm' = (0.228, 0.224, 0.225), what the checkpoint was trained and "
    "evaluated with (§4); 'imagenet' = (0.229, 0.224, 0.225)."
)


# -- backbones ---------------------------------------------------------------------------------


class _EncoderParams(Params):
    """The PanDerm ViT encoder shared by the classification and segmentation backbones."""

    variant: Literal["large", "base"] = Field(
        "large", description="PanDerm-L/16 (1024, 24 blocks, 16 heads) or -B/16 (768, 12, 12)."
    )
    embed_dim: PositiveInt | None = Field(None, description="Width; overrides the variant.")
    depth: NonNegativeInt | None = Field(None, description="Blocks; overrides the variant.")
    num_heads: PositiveInt | None = Field(None, description="Heads; overrides the variant.")
    img_size: PositiveInt = Field(224, description="Input size (fixed; the grid is img/patch).")
    patch_size: PositiveInt = Field(16, description="Patch size.")
    in_chans: PositiveInt = Field(3, description="Input channels.")
    mlp_ratio: float = Field(4.0, gt=0, description="MLP hidden width over embed_dim.")
    init_values: float = Field(
        0.1, gt=0, description="LayerScale init (0.1; the checkpoint overwrites it) (§2.2)."
    )
    drop_path_rate: NonNegativeFloat = Field(
        0.1, lt=1, description="Stochastic depth at the last block, linear from 0 (§2.2)."
    )
    drop_rate: NonNegativeFloat = Field(
        0.0, lt=1, description="Dropout after the MLP's fc2 and the attention projection."
    )
    attn_drop_rate: NonNegativeFloat = Field(0.0, lt=1, description="Attention dropout.")
    impl: Literal["auto", "timm", "native"] = Field(
        "auto",
        description="'timm': timm's VisionTransformer (fused attention); 'native': this plugin's "
        "BEiT/CAE blocks (needed for rel_pos_bias and drop_rate > 0); 'auto' picks timm "
        "where it is exact.",
    )

    @model_validator(mode="after")
    def _timm_is_exact(self) -> _EncoderParams:
        rel = getattr(self, "rel_pos_bias", False)
        if self.impl == "timm" and (rel or self.drop_rate > 0):
            raise ValueError(
                "impl 'timm' has no per-block relative position bias and applies dropout after "
                "fc1 too; use impl 'native' (or 'auto') with rel_pos_bias or drop_rate > 0"
            )
        return self


class PanDermViTParams(_EncoderParams):
    """Params of ``panderm.vit``."""

    pool: Literal["cls", "mean"] = Field(
        "cls",
        description="'cls': CLS token after the final norm (linear probe); 'mean': fc_norm of "
        "the mean of the patch tokens (fine-tuning) (§2.2).",
    )
    num_classes: NonNegativeInt | None = Field(
        None, description="Classifier outputs; default: the dataset's classes; 0: no head."
    )
    rel_pos_bias: bool = Field(
        False,
        description="Per-block relative position bias, zero-initialised (PanDerm fine-tuning "
        "turns it on; it is not in the checkpoint) (§2.2).",
    )
    init_scale: float = Field(
        0.001, gt=0, description="Head weight and bias are multiplied by this (§2.2)."
    )


class PanDermUperNetParams(_EncoderParams):
    """Params of ``panderm.upernet``."""

    init_values: float = Field(1e-5, gt=0, description="LayerScale init (1e-5 in §6.5).")
    drop_path_rate: NonNegativeFloat = Field(0.15, lt=1, description="Stochastic depth (§6.5).")
    out_indices: list[NonNegativeInt] = Field(
        default_factory=lambda: [7, 11, 15, 23],
        min_length=4,
        max_length=4,
        description="0-based blocks whose normed patch tokens feed the x4/x2/x1/x0.5 levels.",
    )
    channels: PositiveInt = Field(1024, description="UPerHead channels (1024 in §6.5).")
    pool_scales: list[PositiveInt] = Field(
        default_factory=lambda: [1, 2, 3, 6], description="Pyramid pooling scales."
    )
    num_classes: PositiveInt = Field(2, description="Segmentation classes (lesion/background).")
    dropout: NonNegativeFloat = Field(0.0, lt=1, description="Dropout before the classifier.")


# -- weight loading and test time -------------------------------------------------------------


class PanDermCheckpointParams(Params):
    """Params of ``panderm.checkpoint``."""

    path: LocalFile = Field(
        description="The released checkpoint (e.g. panderm_ll_data6_checkpoint-499.pth), a "
        "flat or nested state dict (.pth/.pt/.safetensors)."
    )
    sha256: str | None = Field(None, description="Expected sha256 of the file; checked if given.")
    prefix: str = Field(
        "encoder.", description="Keep keys with this prefix and strip it once (§3)."
    )
    target: Literal["panderm", "timm"] = Field(
        "panderm",
        description="'panderm': the panderm.vit / panderm.upernet encoder; 'timm': the first "
        "timm VisionTransformer in the model (e.g. core.timm's).",
    )
    strict: bool = Field(
        True,
        description="Fail unless every backbone tensor is loaded and no encoder key is left "
        "over (the repo's strict=False is the quirk, §3).",
    )


class PanDermTTAParams(Params):
    """Params of ``panderm.tta``."""

    views: PositiveInt = Field(5, description="Random views per image; logits are averaged.")
    resize: PositiveInt = Field(246, description="Shorter side before the centre crop.")
    crop: PositiveInt = Field(224, description="Centre crop.")
    hflip: float = Field(0.5, ge=0, le=1, description="Horizontal flip probability.")
    vflip: float = Field(0.5, ge=0, le=1, description="Vertical flip probability.")
    rotation_p: float = Field(0.3, ge=0, le=1, description="Probability of a random rotation.")
    rotation_degrees: float = Field(270.0, ge=0, description="Rotation drawn from [0, this].")
    jitter_p: float = Field(0.3, ge=0, le=1, description="Probability of colour jitter.")
    hue: float = Field(0.25, ge=0, le=0.5, description="Jitter hue.")
    saturation: float = Field(0.25, ge=0, description="Jitter saturation.")
    std: Std = Field("imagenet", description="The TTA views use 0.229 in the repo (§4).")
    seed: int = Field(0, description="Seed of the views (each call draws from seed and count).")


# -- per-sample and per-batch augmentations ----------------------------------------------------


class EvalTransformParams(Params):
    """Params of ``panderm.eval_transform``."""

    resize: PositiveInt | None = Field(256, description="Shorter side (bilinear); null: keep.")
    crop: PositiveInt | None = Field(224, description="Centre crop; null: none.")
    std: Std = Field("panderm", description=_STD)
    normalize: bool = Field(
        True, description="Normalise; off for panderm.tta, whose views normalise themselves."
    )


class FinetuneTransformParams(Params):
    """Params of ``panderm.finetune_transform``."""

    resize: PositiveInt = Field(256, description="Shorter side first.")
    crop: PositiveInt = Field(224, description="RandomResizedCrop size.")
    scale: tuple[float, float] = Field((0.75, 1.0), description="RandomResizedCrop scale.")
    rotation: float = Field(45.0, ge=0, description="RandomRotation degrees.")
    hue: float = Field(0.2, ge=0, le=0.5, description="ColorJitter hue.")
    std: Std = Field("panderm", description=_STD)
    auto_augment: str | None = Field(
        None,
        description="timm RandAugment string, e.g. 'rand-m9-mstd0.5-inc1': parsed but unused "
        "by PanDerm's transform, so off by default (§4).",
    )
    random_erasing: float = Field(
        0.0, ge=0, le=1, description="timm RandomErasing probability (unused by PanDerm: 0)."
    )


class SegTransformParams(Params):
    """Params of ``panderm.seg_transform``."""

    size: PositiveInt = Field(224, description="Image (bicubic) and mask (nearest) side.")
    augment: bool = Field(
        False,
        description="Training photometric augmentation: ColorJitter(0.2 x4), RandomGrayscale, "
        "RandomAutocontrast, RandomInvert (p 0.2 each), image only (§4).",
    )
    mean: float = Field(0.5, description="Normalisation mean (all channels).")
    std: float = Field(0.5, gt=0, description="Normalisation std (all channels).")


class MixupCutmixParams(Params):
    """Params of ``panderm.mixup_cutmix``."""

    mixup_alpha: NonNegativeFloat = Field(0.8, description="Mixup Beta alpha (0: off).")
    cutmix_alpha: NonNegativeFloat = Field(1.0, description="CutMix Beta alpha (0: off).")
    cutmix_minmax: tuple[float, float] | None = Field(
        None, description="CutMix box ratio range instead of alpha."
    )
    prob: float = Field(1.0, ge=0, le=1, description="Probability of mixing a batch.")
    switch_prob: float = Field(0.5, ge=0, le=1, description="CutMix instead of mixup.")
    correct_lam: bool = Field(True, description="Recompute lam from the clipped box area.")

    @model_validator(mode="after")
    def _something_mixes(self) -> MixupCutmixParams:
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0 and self.cutmix_minmax is None:
            raise ValueError("set mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax")
        return self


# -- data --------------------------------------------------------------------------------------


class DermCsvParams(Params):
    """Params of ``panderm.derm_csv``."""

    csv: LocalFile = Field(description="CSV with image, split and label columns (§5).")
    root: LocalDir | None = Field(None, description="Image folder; default: the CSV's folder.")
    image_key: str = Field("image", description="Image column (the repo's --image_key).")
    label_key: str = Field("label", description="Label column, ints 0..K-1.")
    binary: bool = Field(
        False, description="Read 'binary_label' instead (PanDerm does when nb_classes == 2)."
    )
    split_key: str = Field("split", description="Split column: train, val, test.")
    mask_key: str | None = Field(
        None, description="Mask column for segmentation (task becomes 'segmentation')."
    )
    num_classes: PositiveInt | None = Field(
        None, description="Default: largest label + 1 (2 for segmentation)."
    )
    class_names: list[str] | None = Field(None, description="Names of the classes, in order.")
    concat_root: bool = Field(
        False,
        description="Join root and file name by plain string concatenation, as the repo does "
        "(the root must end with '/') (§5 quirk); default: a proper path join.",
    )


class LabelFractionSamplerParams(Params):
    """Params of ``panderm.label_fraction``."""

    fraction: float = Field(0.1, gt=0, le=1, description="Share of the train rows kept (p).")
    mode: Literal["stratified", "v1"] = Field(
        "stratified",
        description="'stratified': per class min(n_c, max(1, int(n_c p))) rows (PanDerm-2); "
        "'v1': the first int(N p) rows after a seeded shuffle, can drop a class (§6.2).",
    )
    seed: int = Field(42, description="pandas random_state of the repo's sampling.")


class ClassBalancedSamplerParams(Params):
    """Params of ``panderm.class_balanced``."""

    num_samples: PositiveInt | None = Field(
        None, description="Draws per epoch (with replacement); default: N_train (§6.4)."
    )


# -- losses ------------------------------------------------------------------------------------


class SoftTargetCrossEntropyParams(Params):
    """Params of ``panderm.soft_target_ce``."""

    smoothing: float = Field(
        0.1, ge=0, lt=1, description="Label smoothing of the (mixed) one-hot targets (§6.4)."
    )


class LabelSmoothingCrossEntropyParams(SoftTargetCrossEntropyParams):
    """Params of ``panderm.label_smoothing_ce``."""


class PixelCrossEntropyParams(Params):
    """Params of ``panderm.pixel_ce``."""

    ignore_index: int = Field(-100, description="Mask value that does not count.")


class CAEv2AlignmentLossParams(Params):
    """Params of ``panderm.caev2_alignment``."""

    weight: float = Field(
        1.0, gt=0, description="latent_alignment_loss_weight (UNVERIFIED for PanDerm, §2.3)."
    )
    pred_key: str = Field("latent_pred", description="Output key of the predicted latents.")
    target_key: str = Field(
        "latent_target", description="Output (or batch) key of the teacher latents."
    )


# -- evaluators and trainer --------------------------------------------------------------------


class LinearProbeParams(Params):
    """Params of ``panderm.linear_probe``."""

    C: float | None = Field(
        None, gt=0, description="Inverse regularisation; default D*K/100 (K = train classes)."
    )
    penalty: Literal["frobenius", "squared"] = Field(
        "frobenius",
        description="'frobenius': (1/C) 0.5 ||W||_F, the published (unsquared) objective; "
        "'squared': (1/C) 0.5 ||W||_F^2, conventional L2 (§6.1).",
    )
    max_iter: PositiveInt = Field(1000, description="L-BFGS iterations (one step, strong Wolfe).")
    seed: int = Field(0, description="torch.manual_seed before the Linear init (script: 0).")
    label_fraction: float = Field(
        1.0, gt=0, le=1, description="Fit on this share of the train split (§6.2)."
    )
    fraction_mode: Literal["stratified", "v1"] = Field(
        "stratified", description="Rule of the label fraction (see panderm.label_fraction)."
    )
    fraction_seed: int = Field(42, description="Seed of the label fraction.")
    prefix: str = Field("lin_", description="Prefix of the metric keys.")
    name: str = Field("linear_probe", description="Evaluator name in logged keys.")


class KNNProbeParams(Params):
    """Params of ``panderm.knn``."""

    k: PositiveInt = Field(20, description="Neighbours.")
    temperature: float = Field(0.07, gt=0, description="Vote weight exp(cos/T) ('weighted').")
    weighting: Literal["weighted", "uniform"] = Field("weighted", description="Vote weights.")
    label_fraction: float = Field(1.0, gt=0, le=1, description="Share of the train split.")
    fraction_mode: Literal["stratified", "v1"] = Field("stratified", description="As above.")
    fraction_seed: int = Field(42, description="Seed of the label fraction.")
    prefix: str = Field("knn_", description="Prefix of the metric keys.")
    name: str = Field("knn", description="Evaluator name in logged keys.")


class SegMetricsParams(Params):
    """Params of ``panderm.seg_metrics``."""

    postprocess: bool = Field(
        True, description="Largest connected component (8-connected) then hole filling (§6.5)."
    )
    empty: Literal["score", "exclude"] = Field(
        "score",
        description="Images whose GT and prediction are both empty: Dice = Jaccard = 1 "
        "('score') or left out ('exclude'); an empty GT with a non-empty prediction scores 0.",
    )
    faithful_empty_gt: bool = Field(
        False, description="Repo quirk: set the centre pixel of an empty GT mask to 1 (§6.5)."
    )
    faithful_empty_prediction: bool = Field(
        False,
        description="Repo quirk: the LCC of an empty prediction is the whole background, so an "
        "empty prediction becomes an all-lesion mask.",
    )


class FinetuneMetricsParams(Params):
    """Params of ``panderm.finetune_metrics``."""

    num_classes: int | None = Field(
        None, ge=2, description="Classes of the classifier (default: the data's)."
    )


class FinetuneTrainerParams(Params):
    """Params of ``panderm.finetune``."""

    layer_decay: float = Field(
        0.65, gt=0, le=1, description="Layer-wise LR decay: scale 0.65^(L+1-id) (§6.4)."
    )
    weight_decay: NonNegativeFloat = Field(
        0.05, description="On weights only: not on 1-D params, biases, pos_embed, cls_token."
    )
    warmup_epochs: NonNegativeFloat = Field(10, description="Linear warm-up from warmup_lr.")
    warmup_lr: NonNegativeFloat = Field(0.0, description="First warm-up learning rate.")
    min_lr: NonNegativeFloat = Field(1e-6, description="End of the per-step cosine.")
    schedule: bool = Field(
        True,
        description="Set every group's rate each step to cosine(step) x lr_scale (BEiT's "
        "schedule); off: the config's 'schedule' section drives the rates.",
    )
