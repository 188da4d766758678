"""The params models of the ``diffusion_tta`` components (pydantic and the SDK only).

The registration hooks import this module, so it must stay light: no torch, numpy or diffusers.
Each model is named after the class it configures (``Foo`` -> ``FooParams``); the family modules
re-export them next to their classes.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk.params import Params
from pydantic import Field, field_validator

__all__ = [
    "CorruptedDatasetParams",
    "CorruptionParams",
    "CorruptionRobustnessParams",
    "DDPMAdapterParams",
    "DiffusionTrainerParams",
    "EpsMSEParams",
    "FusionMode",
    "SelfEnsembleParams",
    "SourceUNetParams",
]

FusionMode = Literal[
    "sum",
    "confidence",
    "entropy",
    "var",
    "confidence_sum",
    "entropy_sum",
    "confidence_fuse",
    "entropy_fuse",
    "var_fuse",
    "first",
    "second",
]
"""The fusion rules of :class:`~asklepios_diffusion_tta.self_ensemble.SelfEnsemble`."""


class CorruptionParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.corruptions.Corruption`."""

    corruption: str = Field(
        "gaussian_noise",
        description="Corruption name, or a preset (imagenet_c, imagenet_c_extra, medmnist_derma) "
        "from which one is drawn per sample.",
    )
    severity: int | Literal["random"] = Field(
        5, description="Severity 1..5, or 'random' to draw one per sample."
    )
    seed: int | None = Field(
        None,
        description="With a seed and a sample 'index', the corruption of each sample is fixed; "
        "otherwise torch's global generator (seeded per worker by the engine) is used.",
    )
    value_range: tuple[float, float] = Field(
        (0.0, 1.0), description="Range of the incoming image values, mapped to [0, 1] and back."
    )
    frost_texture_dir: str | None = Field(
        None,
        description="Folder of frost textures; like ImageNet-C (frost1-frost5), one of the first "
        "five image files by name is drawn per image.",
    )
    quantize: bool = Field(True, description="Round to 8-bit levels like saved ImageNet-C images.")


class CorruptedDatasetParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.corrupted.CorruptedDataset`."""

    corruptions: str | list[str] = Field(
        "imagenet_c",
        description="Preset (imagenet_c, imagenet_c_extra, medmnist_derma) or list of names. "
        "frost needs frost_texture_dir.",
    )
    severities: list[int] = Field([1, 2, 3, 4, 5], description="Severities to serve (1..5).")
    splits: list[str] = Field(["test"], description="Splits served corrupted; others pass through.")
    include_clean: bool = Field(False, description="Also serve the clean samples (severity 0).")
    seed: int = Field(0, description="Seed of the per-sample corruption generators.")
    value_range: tuple[float, float] = Field(
        (0.0, 1.0), description="Range of the float images of the wrapped dataset."
    )
    frost_texture_dir: str | None = Field(
        None,
        description="Folder of frost textures; like ImageNet-C (frost1-frost5), one of the first "
        "five image files by name is drawn per image.",
    )
    cache_dir: str | None = Field(
        None, description="Cache corrupted blocks here (atomic .pt files keyed by the params)."
    )

    @field_validator("severities")
    @classmethod
    def _severities(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= s <= 5 for s in value):
            raise ValueError(f"severities must be a non-empty list of 1..5, got {value}")
        return value


class CorruptionRobustnessParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.robustness.CorruptionRobustness`."""

    reference_errors: dict[str, list[float]] | None = Field(
        None,
        description="Top-1 error (0..1) of the reference model per corruption, severities 1..5; "
        "enables ce/<corruption> and mce.",
    )
    reference_file: str | None = Field(
        None, description="JSON file with the same mapping as reference_errors."
    )
    plot: bool = Field(
        True,
        description="Report each predictor's accuracy per corruption and severity as a matrix "
        "(printed as one table, drawn under plots/<stage>/).",
    )


class DDPMAdapterParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.ddpm_adapter.DDPMAdapter`.

    The defaults are DDA's ``image_adapt.sh``.
    """

    model_dir: str = Field(
        "source_diffusion",
        description="Local diffusers directory (a pipeline folder with unet/ and scheduler/, or a "
        "UNet2DModel folder). A relative path is looked up in the run directory first, where "
        "diffusion_tta.train_source_diffusion saves its model, then in the working directory.",
    )
    timestep_respacing: str = Field("100", description="guided-diffusion respacing of the sampler.")
    start_step: int = Field(50, ge=1, description="N: respaced step the test image is noised to.")
    start_index_offset: Literal[0, 1] = Field(
        0,
        description="0: first reverse step labelled N (consistent); 1: N-1 like DDA's code.",
    )
    guidance: Literal["dda", "ilvr", "none"] = Field(
        "dda", description="dda: low-pass gradient guidance; ilvr: low-frequency replacement."
    )
    downsample_factor: int = Field(4, ge=1, description="D of the low-pass filter (a power of 2).")
    guidance_scale: float = Field(6.0, ge=0, description="w: step size of the gradient guidance.")
    lowpass_filter: Literal["bicubic", "resize_right"] = Field(
        "bicubic",
        description="φ_D: torch antialiased bicubic with clamped borders, or resize_right's "
        "antialiased cubic with zero padding at the borders (DDA's code).",
    )
    norm_reduction: Literal["sample", "batch"] = Field(
        "sample",
        description="sample: one norm per image (batch-independent); batch: one norm over "
        "the whole batch, like DDA's code.",
    )
    ilvr_stop: int = Field(0, ge=0, description="ILVR refines while the respaced step t > this.")
    clip_denoised: bool = Field(True, description="Clip x̂_0 to [-1, 1] (DDA: on).")
    variance: Literal["auto", "fixed_small", "fixed_large", "learned_range"] = Field(
        "auto",
        description="auto: learned_range when the UNet outputs 2×channels, else the scheduler's.",
    )
    reencode_jpeg_quality: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Re-encode the adapted image as JPEG at this quality (DDA's code: 75); "
        "None keeps it in memory.",
    )
    pixel_mean: tuple[float, ...] = Field(
        (0.0,), description="The classifier input is (pixel - mean)/std with pixel in [0, 1]."
    )
    pixel_std: tuple[float, ...] = Field((1.0,), description="See pixel_mean.")
    diffusion_size: int | None = Field(
        None, description="Resize to this side for the diffusion model and back (None: as is)."
    )
    seed: int = Field(0, description="Seed of the forward noise and the sampling noise.")
    adapt_in_training: bool = Field(False, description="Also adapt in training mode.")

    @field_validator("downsample_factor")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(
                f"downsample_factor must be a power of 2 (log2 D integer), got {value}"
            )
        return value


class SelfEnsembleParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.self_ensemble.SelfEnsemble`."""

    mode: FusionMode = Field("sum", description="Fusion rule (DDA's --ensemble); default sum.")
    faithful_double_softmax: bool = Field(
        False,
        description="Confidence and entropy scores of softmax(p) instead of p, as DDA's code "
        "computes them (it re-applies softmax to the classifier's probabilities).",
    )
    outputs_are_probabilities: bool = Field(
        False, description="The classifier's 'logits' already hold probabilities (mmcls style)."
    )


class SourceUNetParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.source_diffusion.SourceUNet`.

    The defaults give a small UNet; DDA used a 550 M-param ADM.
    """

    sample_size: int | None = Field(None, description="Image side; default: the dataset's.")
    block_out_channels: list[int] = Field([32, 64, 64], description="Channels per UNet level.")
    layers_per_block: int = Field(1, ge=1)
    attention: bool = Field(False, description="Self-attention in the lowest level.")
    norm_num_groups: int = Field(8, ge=1)
    learn_sigma: bool = Field(False, description="Also predict the variance interpolation v.")
    num_train_timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0)
    beta_end: float = Field(0.02, gt=0, lt=1)
    pixel_mean: tuple[float, ...] = Field((0.0,), description="Images are (pixel-mean)/std.")
    pixel_std: tuple[float, ...] = Field((1.0,), description="See pixel_mean.")


class DiffusionTrainerParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.source_diffusion.DiffusionTrainer`."""

    vlb_weight: float = Field(0.001, ge=0, description="λ of the L_vlb term (learned variance).")


class EpsMSEParams(Params):
    """Params of :class:`~asklepios_diffusion_tta.source_diffusion.EpsMSE`."""

    vlb_weight: float = Field(0.001, ge=0, description="λ of the L_vlb term (learned variance).")
    num_train_timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(1e-4, gt=0)
    beta_end: float = Field(0.02, gt=0, lt=1)
