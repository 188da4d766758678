"""Params of every ``tpdrseg`` component (pydantic and the SDK only: importing this is cheap).

Fields marked RECONSTRUCTED in their description follow the spec's reconstruction (no official code
or paper text exists for them); every such value is exposed here so that it can be changed.
"""

from __future__ import annotations

from typing import Any, Literal

from asklepios_sdk import Params
from asklepios_sdk.params import LocalDir, LocalFile
from pydantic import Field, model_validator

__all__ = [
    "LESIONS",
    "BceDiceLossParams",
    "ExplicitPriorParams",
    "FundusAugParams",
    "FundusLesionsParams",
    "InjectorParams",
    "LesionMetricsParams",
    "LesionSamplerParams",
    "MaskDecoderHeadParams",
    "SamImageEncoderParams",
    "SkimageFundusParams",
]

LESIONS: tuple[str, ...] = ("MA", "HE", "EX", "SE")
"""The DR lesions: microaneurysms, haemorrhages, hard exudates, soft exudates."""

Lesion = Literal["MA", "HE", "EX", "SE"]

DEFAULT_LESION_PROMPTS: dict[str, list[str]] = {
    "MA": ["small round red dots", "tiny dark-red spots"],
    "HE": ["dark red blot or flame-shaped patches"],
    "EX": ["yellowish-white waxy deposits with sharp edges"],
    "SE": ["pale white fluffy cotton-wool patches with blurred edges"],
}
DEFAULT_BACKGROUND_PROMPTS: list[str] = [
    "normal retina",
    "blood vessel",
    "optic disc",
    "black background",
]


def _all_lesions() -> list[Lesion]:
    return ["MA", "HE", "EX", "SE"]


def _demo_lesions() -> list[Literal["MA", "EX"]]:
    return ["MA", "EX"]


class SamImageEncoderParams(Params):
    """Params of ``tpdrseg.sam_encoder`` (SAM's ViT image encoder, frozen)."""

    variant: Literal["vit_b", "vit_l", "vit_h"] = Field(
        "vit_b", description="SAM image encoder size (widths, depth, heads, global blocks)."
    )
    checkpoint: LocalFile | None = Field(
        None,
        description="Local SAM checkpoint (e.g. sam_vit_b_01ec64.pth; its 'image_encoder.' keys "
        "are used) or an encoder-only state dict. Referenced by path and sha256 in checkpoints "
        "and the run record, never copied into them.",
    )
    random_init: bool = Field(
        False, description="Build without weights (tests and smoke runs only); else checkpoint."
    )
    img_size: int = Field(1024, ge=16, description="Input size; the token grid is img_size/16.")
    patch_size: int = Field(16, ge=1)
    embed_dim: int | None = Field(None, ge=8, description="Override the variant's width.")
    depth: int | None = Field(None, ge=1, description="Override the variant's depth.")
    num_heads: int | None = Field(None, ge=1, description="Override the variant's heads.")
    global_attn_indexes: list[int] | None = Field(
        None, description="Override the blocks with global attention (variant's by default)."
    )
    window_size: int = Field(14, ge=0, description="Window of the windowed-attention blocks.")
    out_chans: int = Field(256, ge=8, description="Neck width C_p (SAM: 256).")


class ExplicitPriorParams(Params):
    """Params of ``tpdrseg.explicit_prior`` (RECONSTRUCTED, spec section 2.2)."""

    clip: dict[str, Any] = Field(
        default_factory=lambda: {"model": "ViT-B-16", "pretrained": "openai"},
        description="Params of the CLIP backbone component (core.open_clip: model, "
        "pretrained_file or pretrained+cache_dir, model_cfg, random_init). RECONSTRUCTED: "
        "OpenAI ViT-B/16 by default; a retina CLIP is a reasonable alternative.",
    )
    clip_file: LocalFile | None = Field(
        None,
        description="Local open_clip checkpoint of the CLIP model (sets clip.pretrained_file; "
        "resolved against the config file and checked by validate).",
    )
    clip_component: str = Field(
        "core.open_clip",
        description="Backbone id that provides the frozen open_clip model (it must expose "
        "'clip', 'encode_text', 'pixel_mean' and 'pixel_std' like core.open_clip).",
    )
    prompts: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_LESION_PROMPTS.items()},
        description="Explicit attribute prompts per lesion (RECONSTRUCTED wording).",
    )
    background_prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BACKGROUND_PROMPTS),
        min_length=1,
        description="Background prompts competing with the lesion prompts (RECONSTRUCTED).",
    )
    prior_mode: Literal["softmax_vs_background", "minmax_mean_similarity"] = Field(
        "softmax_vs_background",
        description="P = lesion share of a softmax over lesion+background prompts, or the "
        "per-image min-max of the mean lesion cosine (RECONSTRUCTED).",
    )
    temperature: float = Field(0.01, gt=0, description="Softmax temperature tau (RECONSTRUCTED).")
    input_size: int = Field(
        448, ge=16, description="Side of the CLIP-branch input (448 -> 28x28 for ViT-B/16)."
    )
    prior_size: int | None = Field(
        None, ge=1, description="Side of P_e; default: the token grid of the SAM encoder."
    )

    @model_validator(mode="after")
    def _prompts_given(self) -> ExplicitPriorParams:
        empty = sorted(k for k, v in self.prompts.items() if not v)
        if empty:
            raise ValueError(f"prompts of {empty} are empty; give at least one per lesion")
        return self


class InjectorParams(Params):
    """Params of ``tpdrseg.injector`` (prior-aligned cross-attention, spec section 2.3)."""

    layers: list[int] | None = Field(
        None, description="ViT blocks followed by an injector (default: every block)."
    )
    hidden_dim: int | None = Field(
        None,
        ge=1,
        description="C_h; default the encoder width C (re-implementation). Another value adds "
        "a 1x1 conv C_h -> C on the output (the lighter option).",
    )
    stride: int = Field(4, ge=1, description="Token stride of Q/K/V (re-implementation: 4).")
    kv_downsample: Literal["subsample", "avgpool"] = Field(
        "subsample",
        description="K/V from every stride-th token (1x1 strided conv, re-implementation) or "
        "from stride x stride average pooling; Q is always subsampled.",
    )


class MaskDecoderHeadParams(Params):
    """Params of ``tpdrseg.mask_decoder`` (SAM's mask decoder, trainable)."""

    checkpoint: LocalFile | None = Field(
        None,
        description="Local SAM checkpoint; its 'mask_decoder.' keys and the prompt encoder's "
        "positional-encoding matrix are loaded.",
    )
    random_init: bool = Field(
        False, description="Start from random weights (tests and smoke runs); else checkpoint."
    )
    transformer_depth: int = Field(2, ge=1)
    mlp_dim: int = Field(2048, ge=1)
    num_heads: int = Field(8, ge=1)
    iou_head_hidden_dim: int = Field(256, ge=1)
    num_multimask_outputs: int = Field(3, ge=1)


class BceDiceLossParams(Params):
    """Params of ``tpdrseg.bce_dice`` (RECONSTRUCTED, spec section 2.6)."""

    loss: Literal["bce_dice", "focal_dice"] = Field(
        "bce_dice", description="BCE + Dice, or sigmoid focal + Dice for sparse lesions."
    )
    smooth: float = Field(1.0, ge=0, description="Dice smoothing s.")
    pixel_weight: float = Field(1.0, ge=0, description="Weight of the BCE / focal term.")
    dice_weight: float = Field(1.0, ge=0, description="Weight of the Dice term.")
    focal_alpha: float | None = Field(0.25, ge=0, le=1, description="Focal alpha (None: off).")
    focal_gamma: float = Field(2.0, ge=0, description="Focal gamma.")


class FundusLesionsParams(Params):
    """Params of ``tpdrseg.fundus_lesions`` (IDRiD or DDR lesion segmentation folders)."""

    root: LocalDir = Field(
        description="IDRiD: the 'A. Segmentation' folder; DDR: the 'lesion_segmentation' folder."
    )
    layout: Literal["idrid", "ddr"] = "idrid"
    lesions: list[Lesion] = Field(default_factory=_all_lesions, min_length=1)
    image_size: int = Field(1024, ge=16, description="SAM input side (longest side, padded).")
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="IDRiD only: images of train held out as 'val'."
    )
    missing_mask: Literal["empty", "skip"] = Field(
        "empty",
        description="An (image, lesion) without a mask file: an empty mask (IDRiD omits files "
        "of absent lesions) or no item.",
    )
    mask_threshold: float = Field(
        0.5, gt=0, le=1, description="Area-resized mask value from which a pixel is lesion."
    )


class SkimageFundusParams(Params):
    """Params of ``tpdrseg.skimage_fundus`` (demo data from scikit-image, pseudo-masks)."""

    image_size: int = Field(128, ge=16, description="SAM input side of every tile.")
    tiles: int = Field(3, ge=1, le=8, description="The retina is cut into tiles x tiles crops.")
    lesions: list[Literal["MA", "EX"]] = Field(
        default_factory=_demo_lesions,
        min_length=1,
        description="MA: black top-hat > Otsu (dark dots); EX: white top-hat > Otsu (bright).",
    )
    radius: int = Field(5, ge=1, description="Disk radius of the top-hat.")


class LesionSamplerParams(Params):
    """Params of ``tpdrseg.lesion_sampler``."""

    lesion_weights: dict[str, float] | None = Field(
        None, description="Relative probability of each lesion (default: uniform)."
    )


class FundusAugParams(Params):
    """Params of ``tpdrseg.fundus_aug`` (joint image and mask geometry)."""

    hflip: float = Field(0.5, ge=0, le=1, description="Probability of a left-right flip.")
    vflip: float = Field(0.5, ge=0, le=1, description="Probability of a top-bottom flip.")
    rotation: Literal["none", "right_angles", "uniform"] = Field(
        "right_angles",
        description="Rotate by a multiple of 90 degrees (lossless), by a uniform angle in "
        "[-degrees, degrees], or not at all.",
    )
    degrees: float = Field(30.0, ge=0, le=180)


class LesionMetricsParams(Params):
    """Params of ``tpdrseg.lesion_metrics``."""

    threshold: float = Field(0.5, gt=0, lt=1, description="Probability threshold of Dice/IoU.")
    empty_gt: Literal["one", "exclude"] = Field(
        "one",
        description="An image (or a lesion over the dataset) with empty ground truth: Dice = IoU "
        "= 1 when the prediction is empty too (0 otherwise), or left out of the average.",
    )
    aupr_bins: int | None = Field(
        1001,
        ge=2,
        description="Thresholds of the binned pixel AUPR (fixed memory); None: exact, keeping "
        "every pixel score (small test sets only).",
    )
    lesions: list[Lesion] | None = Field(
        None, description="Lesions reported; default: the dataset's (facts.extras['lesions'])."
    )
    overlays: int = Field(
        4, ge=0, description="Images drawn per evaluation into overlays/<stage>/ (0: none)."
    )
