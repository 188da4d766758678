"""Params models of every ``knowledge_mask`` component, one ``<Class>Params`` per class.

This module imports pydantic, the SDK and the standard library only, so the registration hooks,
``asklepios validate`` and schema export read it without importing torch. The defaults are
Fundus2Video's (``train.py``, ``options/``), CUT's and pix2pixHD's.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "AdversarialTrainerParams",
    "FFAVideoDatasetParams",
    "FOVPreprocessParams",
    "FundusVideoGeneratorParams",
    "GradientVarianceParams",
    "KnowledgeAttentionParams",
    "KnowledgeAwareDiscriminatorParams",
    "KnowledgeMaskParams",
    "MaskedPatchNCEParams",
    "SyntheticFFAVideoParams",
    "VGGPerceptualParams",
    "VideoMetricsParams",
]


# --- augmentations (masks.py) -------------------------------------------------------------------


class FOVPreprocessParams(Params):
    """Params of :class:`FOVPreprocess`."""

    size: int = Field(512, ge=8, description="Output side (opt.w = 512 in train.py).")
    random_crop: bool = Field(True, description="Shared random crop (training only).")
    flip_p: float = Field(0.5, ge=0, le=1, description="Horizontal-flip probability (training).")
    mode: Literal["fixed", "faithful"] = Field(
        "fixed",
        description="fixed: flip CF, frames and masks together; faithful: flip the CF image only.",
    )
    cf_threshold: int = Field(11, ge=0, le=255, description="CF green threshold of the FOV mask.")
    ffa_threshold: int = Field(2, ge=0, le=255, description="FFA green threshold of the FOV mask.")
    dilation: int = Field(11, ge=1, description="Side of the cross dilation element (odd).")


class KnowledgeMaskParams(Params):
    """Params of :class:`KnowledgeMask`."""

    threshold: int = Field(45, ge=0, le=255, description="Strict threshold on |G_first - G_last|.")
    channel: int = Field(1, ge=0, le=2, description="Channel of the FFA frames (1 = green).")
    value_range: Literal["[-1,1]", "[0,1]"] = Field(
        "[-1,1]", description="Range of float video frames (uint8 frames are used as they are)."
    )


# --- backbones (generator.py, discriminator.py) -------------------------------------------------


class FundusVideoGeneratorParams(Params):
    """Params of :class:`FundusVideoGenerator`."""

    input_nc: int = Field(6, ge=1, description="Input channels: CF (3) + context (3).")
    output_nc: int = Field(3, ge=1, description="Output channels: the 3 frames of a step.")
    ngf: int = Field(64, ge=1, description="Width of the first layer (8 is enough on a CPU).")
    n_downsampling: int = Field(4, ge=1, description="Stride-2 convolutions (n_downsample_global).")
    n_blocks: int = Field(9, ge=1, description="Residual blocks at the bottleneck.")
    num_frames: int | None = Field(
        None, ge=1, description="Frames generated at inference; default: len(batch['video'])."
    )


class KnowledgeAwareDiscriminatorParams(Params):
    """Params of :class:`KnowledgeAwareDiscriminator`."""

    input_nc: int = Field(6, ge=1, description="Channels of the (CF, frames) pair.")
    ndf: int = Field(64, ge=1, description="Width of the first layer.")
    n_layers: int = Field(3, ge=1, description="Stride-2 layers per scale (n_layers_D).")
    num_D: int = Field(2, ge=1, description="Scales.")


# --- losses (patchnce.py, perceptual.py) --------------------------------------------------------


class MaskedPatchNCEParams(Params):
    """Params of :class:`MaskedPatchNCE` (defaults: Fundus2Video / CUT)."""

    nce_layers: tuple[int, ...] = Field((0, 4, 8, 12, 16), description="Generator layer indices.")
    channels: tuple[int, ...] = Field(
        (6, 128, 256, 512, 1024),
        description="Channels of those layers (ngf 64); ngf 8 gives (6, 16, 32, 64, 128).",
    )
    num_patches: int = Field(256, ge=1, description="Positions sampled per layer.")
    nc: int = Field(256, ge=1, description="Width of the projection MLPs (netF_nc).")
    tau: float = Field(0.07, gt=0, description="Temperature nce_T.")
    weight: float = Field(1.0, ge=0, description="lambda_NCE.")
    paired_real: bool = Field(True, description="Add the real-FFA -> fake-FFA term (nce_idt).")
    mode: Literal["fixed", "faithful"] = Field(
        "fixed",
        description="fixed: heads are trained; faithful: heads stay at their random init.",
    )


class GradientVarianceParams(Params):
    """Params of :class:`GradientVariance`."""

    patch_size: int = Field(12, ge=2, description="Side of the non-overlapping patches.")
    weight: float = Field(5.0, ge=0, description="Weight in the generator objective (5·G_seg).")


class VGGPerceptualParams(Params):
    """Params of :class:`VGGPerceptual`."""

    weights_path: str = Field(
        description="Local file with torchvision vgg19 weights ('features.N.*' keys, or "
        "features-only keys 'N.*'); never downloaded."
    )
    layer_weights: tuple[float, float, float, float, float] = Field(
        (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), description="Weights of relu1_1 ... relu5_1."
    )
    weight: float = Field(10.0, ge=0, description="lambda_feat.")


# --- trainer (adversarial.py) -------------------------------------------------------------------


class AdversarialTrainerParams(Params):
    """Params of :class:`AdversarialTrainer` (defaults: Fundus2Video's ``train.py``)."""

    mode: Literal["fixed", "faithful"] = Field(
        "fixed",
        description="fixed: train the NCE heads and match masked with masked D features; "
        "faithful: heads frozen at init, unmasked-fake vs masked-real feature matching.",
    )
    discriminator: KnowledgeAwareDiscriminatorParams = Field(
        default_factory=KnowledgeAwareDiscriminatorParams
    )
    nce: MaskedPatchNCEParams | None = Field(
        default_factory=MaskedPatchNCEParams,
        description="Mask-enhanced PatchNCE ('channels' and 'mode' are set from the generator and "
        "'mode'); null disables it.",
    )
    vgg: VGGPerceptualParams | None = Field(
        None, description="VGG19 perceptual term; needs a local weights file; null leaves it out."
    )
    gradient_variance: GradientVarianceParams | None = Field(
        default_factory=GradientVarianceParams, description="Gradient-variance term (G_seg)."
    )
    gan_weight: float = Field(2.0, ge=0, description="Weight of G_GAN in L_G.")
    knowledge_aware: bool = Field(True, description="Masked D terms (temp_loss = 1).")
    gan_temp_weight: float = Field(1.0, ge=0, description="Weight of G_GAN_temp in L_G.")
    feature_matching: bool = Field(True, description="D feature matching (not no_ganFeat_loss).")
    feat_weight: float = Field(10.0, ge=0, description="lambda_feat of feature matching.")
    sampling_ramp: int = Field(1000, ge=0, description="Videos after which context is generated.")
    sampling_every: int = Field(100, ge=1, description="Videos per step of the sampling ramp.")


# --- adapter (attention.py) ---------------------------------------------------------------------


class KnowledgeAttentionParams(Params):
    """Params of :class:`KnowledgeAttention` (reconstructed component)."""

    mode: Literal["spatial_gate", "cross_attention"] = Field(
        "spatial_gate", description="How the mask modulates the bottleneck features."
    )
    head_channels: int = Field(64, ge=1, description="Hidden width of the mask-prediction head.")
    mask_weight: float = Field(1.0, ge=0, description="lambda_K of BCE(K_hat, K).")
    attention_dim: int | None = Field(
        None, ge=1, description="Query/key width of cross_attention (default: channels // 8)."
    )
    predicted_mask_schedule: bool = Field(
        False,
        description="In training, use the detached predicted mask instead of K with the "
        "scheduled-sampling probability of the videos seen (batch['videos_seen']).",
    )


# --- evaluator (metrics.py) ---------------------------------------------------------------------


class VideoMetricsParams(Params):
    """Params of :class:`VideoMetrics`."""

    value_range: Literal["standard", "faithful"] = Field(
        "standard",
        description="standard: metrics on [0,1], dataset-level FVD; faithful: the code's [-1,1] "
        "conventions and per-video FVD over clip lengths 10..M.",
    )
    i3d_path: str | None = Field(
        None,
        description="Local TorchScript I3D (StyleGAN-V's i3d_torchscript.pt) for FVD; never "
        "downloaded. Without it FVD is not computed.",
    )
    lpips: bool = Field(
        False, description="LPIPS-AlexNet (needs torchvision's alexnet weights in the torch cache)."
    )
    min_fvd_frames: int = Field(10, ge=1, description="Shortest clip of the per-video FVD.")
    i3d_size: int = Field(224, ge=8, description="I3D input side (resize shorter side, crop).")


# --- datasets (datasets.py) ---------------------------------------------------------------------


class FFAVideoDatasetParams(Params):
    """Params of :class:`FFAVideoDataset`."""

    csv_path: str = Field(
        description="CSV with pid_eye, orgid, Phase, level_1, co_rigid, fa_rigid."
    )
    root: str | None = Field(None, description="Base of relative image paths (default: CSV dir).")
    drop_phases: tuple[str, ...] = Field(("A", "C"), description="Phases removed (train.py).")
    rename_phases: dict[str, str] = Field(
        default_factory=lambda: {"AV": "V"}, description="Phase renaming (train.py)."
    )
    per_phase: int = Field(4, ge=1, description="Rows drawn per phase, with replacement.")
    split_seed: int = Field(7, description="random_state of both GroupShuffleSplit cuts.")


class SyntheticFFAVideoParams(Params):
    """Params of :class:`SyntheticFFAVideo`."""

    size: int = Field(96, ge=16, description="Side of the raw square images.")
    num_frames: int = Field(5, ge=1, description="Frames per SYNTHETIC video.")
    train: int = Field(4, ge=1, description="Training videos.")
    val: int = Field(1, ge=1, description="Validation videos.")
    test: int = Field(1, ge=1, description="Test videos.")
    seed: int = Field(0, description="Seed of the synthetic leakage and noise.")
