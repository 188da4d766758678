"""Params models of the synfer components (pydantic and the SDK only: importing this is cheap).

Defaults follow the SynFER spec (``shared/specs/synfer.md``): [repro] values from the
third-party reproduction where the paper is silent, [proposal] values where both are. The
README lists which is which.
"""

from __future__ import annotations

from typing import Any, Literal

from asklepios_sdk import Params
from asklepios_sdk.params import LocalDir, LocalFile
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

__all__ = [
    "AFFECTNET8",
    "AUAdapterParams",
    "ClassifierRef",
    "DiffusionTrainerParams",
    "DigitsFETextParams",
    "FETextParams",
    "GenerationQualityParams",
    "GenerationRequestsParams",
    "GuidedGenerationParams",
    "LabelCalibratorParams",
    "LatentDiffusionParams",
    "SemanticGuidanceParams",
    "SyntheticFERParams",
    "TinyLDMConfig",
]

AFFECTNET8 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
"""AffectNet-8 label order used for guidance and evaluation ([repro])."""


class TinyLDMConfig(Params):
    """Widths of a small Stable-Diffusion-shaped model built from configs with random weights."""

    resolution: PositiveInt = Field(16, description="Image side in pixels (latents: side / 2).")
    unet_channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32])
    vae_channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32])
    text_dim: PositiveInt = Field(32, description="Text-encoder width = cross-attention width.")
    text_layers: PositiveInt = 2
    max_length: PositiveInt = Field(16, description="Tokens per prompt (77 in SD 1.5).")
    norm_groups: PositiveInt = 8
    seed: int = Field(0, description="Seed of the random initialisation.")


class LatentDiffusionParams(Params):
    """Params of :class:`~asklepios_synfer.ldm.LatentDiffusion` (``synfer.ldm``)."""

    model_dir: LocalDir | None = Field(
        None,
        description="Local Stable Diffusion folder in diffusers layout (unet/, vae/, "
        "text_encoder/, tokenizer/, scheduler/), e.g. stable-diffusion-v1-5. Default: a tiny "
        "random model built from 'tiny' (tests and the demo).",
    )
    tiny: TinyLDMConfig = Field(default_factory=TinyLDMConfig)
    resolution: PositiveInt | None = Field(
        None,
        description="Training/generation side in pixels; default: 512 for a model_dir "
        "(SD 1.5), tiny.resolution otherwise.",
    )
    lora_dir: LocalDir | LocalFile | None = Field(
        None,
        description="Stage-1 LoRA weights to load (a save_lora_weights folder or a "
        ".safetensors file), through diffusers/peft's own LoRA loading.",
    )
    lora_rank: PositiveInt | None = Field(
        None, description="Add fresh trainable LoRA layers of this rank (stage-1 fine-tuning)."
    )
    lora_alpha: PositiveInt | None = Field(None, description="LoRA alpha; default: the rank.")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"],
        description="UNet attention projections that get LoRA layers.",
    )
    scaling_factor: float | None = Field(
        None, description="VAE latent scale; default: the VAE config's (0.18215 for SD 1.5)."
    )

    @model_validator(mode="after")
    def _one_lora(self) -> LatentDiffusionParams:
        if self.lora_dir is not None and self.lora_rank is not None:
            raise ValueError(
                "give lora_dir (load stage-1 LoRA weights) or lora_rank (train fresh LoRA "
                "layers), not both"
            )
        return self


class DiffusionTrainerParams(Params):
    """Params of :class:`~asklepios_synfer.trainer.DiffusionTrainer`."""

    train: Literal["lora", "adapter", "unet"] = Field(
        "adapter",
        description="What trains: 'lora' (stage 1: the UNet's LoRA layers), 'adapter' (stage 2: "
        "the AU projector and to_k_ip/to_v_ip only), 'unet' (every UNet weight).",
    )
    text_dropout: float = Field(
        0.05, ge=0, le=1, description="Probability that a caption is replaced by '' (CFG)."
    )
    au_dropout: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that an AU vector is replaced by zeros [proposal; 0 = off].",
    )


class AUAdapterParams(Params):
    """Params of :class:`~asklepios_synfer.au_adapter.AUAdapter` (``synfer.au_adapter``)."""

    au_dim: PositiveInt = Field(41, description="AU vector length (OpenGraphAU: 27 + 14).")
    n_tokens: PositiveInt = Field(1, description="AU tokens appended to the text tokens.")
    depth: PositiveInt = Field(1, description="Linear layers of the projector (1 = [repro]).")
    hidden: PositiveInt | None = Field(None, description="Hidden width (default: token width).")
    scale: float = Field(1.0, ge=0, description="s in Attn(txt) + s * Attn(au).")
    init_from_text_kv: bool = Field(
        True, description="Initialise to_k_ip / to_v_ip by copying to_k / to_v."
    )
    checkpoint: LocalFile | None = Field(
        None,
        description="Trained adapter to load: torch file {'image_proj': ..., 'ip_adapter': ...} "
        "(the reproduction's layout).",
    )


class SemanticGuidanceParams(Params):
    """Params of :class:`~asklepios_synfer.guidance.SemanticGuidance`."""

    lambda_g: float = Field(0.1, ge=0, description="Step size λ_g on the text embedding.")
    sign: Literal[-1, 1] = Field(
        -1, description="-1: descent on the CE (toward the target); +1: the paper as transcribed."
    )
    norm: Literal["per_token_l2", "global_l2", "none"] = Field(
        "per_token_l2", description="How the gradient is normalised ([repro]: per token)."
    )
    eps: float = Field(1e-8, gt=0)


class SoftCrossEntropyParams(Params):
    """Params of :class:`~asklepios_synfer.losses.SoftCrossEntropy` (``synfer.soft_ce``).

    None: the targets are the batch's ``soft_label`` rows, else one-hot ``label``.
    """


class ClassifierRef(Params):
    """A classifier built from a registered backbone and its weights, for guidance or scoring."""

    component: str = Field(description="Backbone id, e.g. 'core.timm' or 'core.mlp'.")
    params: dict[str, Any] = Field(default_factory=dict, description="Its params.")
    weights: LocalFile | None = Field(None, description="Local weights file (.pt/.safetensors).")
    from_stage: str | None = Field(
        None, description="Take the backbone of this stage's checkpoint in the run directory."
    )
    checkpoint: Literal["best", "last"] = "best"
    input_size: PositiveInt = Field(224, description="Side the image is resized to.")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    channels: Literal[1, 3] = Field(3, description="1: average RGB to grey first.")
    num_classes: PositiveInt | None = Field(
        None, description="Its classes (default: the stage's data); it sees input_size images."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ClassifierRef:
        if (self.weights is None) == (self.from_stage is None):
            raise ValueError(
                "give exactly one of 'weights' (a local file) and 'from_stage' (a stage of "
                "this run whose checkpoint holds the classifier)"
            )
        return self


class GuidedGenerationParams(Params):
    """Params of :class:`~asklepios_synfer.generation.GuidedGeneration`."""

    steps: PositiveInt = Field(50, description="DDIM steps of the full schedule.")
    invert_steps: PositiveInt = Field(
        35, description="Steps of DDIM inversion, and of denoising from there ([repro])."
    )
    guidance_start: int = Field(
        15,
        ge=0,
        description="0-based index, among the invert_steps denoising steps, of the first guided "
        "step: steps i >= guidance_start are guided, so the default 15 guides the last 20 of 35 "
        "([repro]: 'i >= sg_start_step' over its enumerated denoising timesteps, "
        "--sg_start_step 15); >= invert_steps: no guided step.",
    )
    cfg: float = Field(7.5, ge=1, description="Classifier-free guidance scale.")
    negative_prompt: str = "low quality, distortion, blur"
    inversion_prompt: str = "a photo of a face"
    layout: bool = Field(
        True, description="Start from the DDIM inversion of the request's image; else noise."
    )
    classifier: ClassifierRef | None = Field(
        None, description="FER classifier of the semantic guidance; none: no guidance."
    )
    guidance: SemanticGuidanceParams = Field(default_factory=SemanticGuidanceParams)
    class_names: list[str] | None = Field(
        None, description="Class names, written into each item's record."
    )

    @model_validator(mode="after")
    def _steps(self) -> GuidedGenerationParams:
        if self.invert_steps > self.steps:
            raise ValueError(f"invert_steps {self.invert_steps} exceeds steps {self.steps}")
        return self


class FETextParams(Params):
    """Params of :class:`~asklepios_synfer.datasets.FEText` (``synfer.fetext``)."""

    roots: list[LocalDir] = Field(
        description="Source folders, each with captions.json, fau_labels.json and the images."
    )
    image_size: PositiveInt = Field(512, description="Images are resized to this side.")
    au_dim: PositiveInt = 41
    au_threshold: float = Field(0.5, description="AU values >= this count as present.")
    text_dropout: float = Field(
        0.0, ge=0, le=1, description="Probability that a sample's caption reads ''."
    )


class DigitsFETextParams(Params):
    """Params of :class:`~asklepios_synfer.datasets.DigitsFEText` (``synfer.digits_fetext``)."""

    image_size: PositiveInt = 16
    classes: PositiveInt = Field(8, le=10, description="Digits 0..classes-1 are the classes.")
    per_class: PositiveInt = Field(40, description="Training samples per class.")
    au_dim: PositiveInt = 41
    au_flip: float = Field(0.05, ge=0, lt=0.5, description="Per-bit noise on the class AUs.")
    seed: int = 0


class GenerationRequestsParams(Params):
    """Params of :class:`~asklepios_synfer.datasets.GenerationRequests`."""

    count: PositiveInt = Field(description="Images to generate (balanced over classes).")
    class_names: list[str] = Field(default_factory=lambda: list(AFFECTNET8))
    prompt: str = Field(
        "a photo of a face with a {expression} expression",
        description="Prompt per request; '{expression}' becomes the class name.",
    )
    au_source: Literal["emfacs", "class_mean", "table"] = Field(
        "emfacs",
        description="AU vector per class: EMFACS prototypes of AffectNet-8 on the OpenGraphAU "
        "order [proposal], the layout data's mean per class (thresholded), or 'au_table'.",
    )
    au_table: LocalFile | None = Field(
        None, description="JSON {class name: '41 space-separated 0/1'} for au_source 'table'."
    )
    au_dim: PositiveInt = 41
    layouts: dict[str, Any] = Field(
        description="Dataset whose training images are the layouts, e.g. {type: synfer.fetext, "
        "roots: [...]}."
    )
    seed: int = Field(0, description="Seed of the layout draw (independent of the run's).")


class SyntheticFERParams(Params):
    """Params of :class:`~asklepios_synfer.datasets.SyntheticFER`."""

    stage: str | None = Field(None, description="Generation stage of this run to read.")
    path: LocalDir | None = Field(None, description="Or the folder of a generated dataset.")
    real: dict[str, Any] | None = Field(
        None, description="Real dataset ({type: ..., ...}): its val/test splits are served."
    )
    mix_real: bool = Field(False, description="Add the real training split to the synthetic.")
    scale: PositiveFloat | None = Field(
        None, description="Use scale × |real train| synthetic items (1 or 5 in the paper)."
    )
    calibrator: LabelCalibratorParams | None = Field(
        None, description="Calibrate the labels of the synthetic items (synfer.label_calibrator)."
    )
    num_classes: PositiveInt | None = Field(
        None, description="Classes (default: the real data's, else the largest label + 1)."
    )
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="Synthetic items held out as val without real data."
    )
    as_test: bool = Field(
        False,
        description="Also serve every synthetic item as the test split, to evaluate the "
        "generated set itself (an evaluation-only stage with synfer.label_calibrator and "
        "synfer.generation_quality).",
    )

    @model_validator(mode="after")
    def _source(self) -> SyntheticFERParams:
        if (self.stage is None) == (self.path is None):
            raise ValueError("give exactly one of 'stage' and 'path'")
        if (self.mix_real or self.scale is not None) and self.real is None:
            raise ValueError("mix_real and scale need 'real' (the real dataset)")
        return self


class LabelCalibratorParams(Params):
    """Params of :class:`~asklepios_synfer.calibrator.LabelCalibrator` (our rule)."""

    models: list[ClassifierRef] = Field(
        default_factory=list, description="The M ensemble members (M >= 1 to calibrate)."
    )
    tau_conf: float = Field(0.6, ge=0, le=1, description="τ_conf: mean confidence to relabel.")
    min_votes: PositiveInt = Field(2, description="Members whose argmax must agree to relabel.")
    soft: bool = Field(
        False,
        description="Keep undecided samples with the soft label p̄ (served as 'soft_label'). "
        "Only a loss that reads soft_label trains on p̄: with synfer.synthetic_fer set the "
        "stage's loss to {type: synfer.soft_ce}; core.cross_entropy would train such a sample "
        "on its intended label y₀.",
    )


class GenerationQualityParams(Params):
    """Params of :class:`~asklepios_synfer.quality.GenerationQuality`."""

    classifier: ClassifierRef | None = Field(
        None, description="Held-out FER classifier (must differ from the guidance one)."
    )
    stage: str | None = Field(None, description="Generation stage whose guidance is checked.")
    path: LocalDir | None = Field(None, description="Or the generated folder to check against.")
    feature_extractor: ClassifierRef | None = Field(
        None, description="Backbone whose 'features' feed FID (a local file; none: no FID)."
    )
    reference: dict[str, Any] | None = Field(
        None, description="Real dataset ({type: ..., ...}) whose 'reference_split' FID uses."
    )
    reference_split: str = "test"


SyntheticFERParams.model_rebuild()
