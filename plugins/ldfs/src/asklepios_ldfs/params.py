"""Params models of every ``ldfs`` component, named ``<Class>Params``.

Importing this module costs pydantic and the SDK only: the registration hooks import it to
register the components without importing torch.
"""

from __future__ import annotations

import math
from typing import Literal

from asklepios_sdk import Params
from pydantic import Field, model_validator

__all__ = [
    "ClipAdapterHeadParams",
    "CoOpHeadParams",
    "DomainAccuracyParams",
    "FeatureBackboneParams",
    "FeatureSynthesisParams",
    "LDFSSynthesizerParams",
    "LinearProbeParams",
    "PairwiseRegularizerParams",
    "SynthesisObjectiveParams",
    "TextGuidedLossParams",
    "TextNoiseParams",
    "ToyClipSpaceParams",
]


# --- stage 1: the synthesiser, its losses and the text noise ----------------------------------


class LDFSSynthesizerParams(Params):
    """Params of ``ldfs.synthesizer``."""

    arch: Literal["ldfs", "lads"] = Field(
        "ldfs", description="'ldfs': instance-conditional stochastic (reconstructed); 'lads': MLP."
    )
    per_domain_net: bool = Field(
        False, description="One network per target domain instead of one shared network."
    )
    d_z: int = Field(64, ge=1, description="Width of the noise input z (ldfs).")
    hidden_dim: int = Field(384, ge=1, description="Hidden width of the MLP (LADS: 384).")
    num_draws: int = Field(1, ge=1, description="Noise draws M per image and domain.")
    zero_init_last: bool = Field(
        True, description="Zero-initialise the last layer so that ldfs starts as the identity."
    )
    source_sets: list[str] = Field(
        default_factory=lambda: ["source"],
        description="Text sets of the source domain (several: the most similar per image, j*).",
    )
    domains: list[str] | None = Field(
        None,
        description="Text sets of the target domains; default: every set except the source "
        "sets and 'classes' (the plain class prompts).",
    )
    diversity_pair: bool = Field(
        False, description="Also draw a second z per sample (needed by the diversity term)."
    )


class TextGuidedLossParams(Params):
    """Params of ``ldfs.text_guided_loss``."""

    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the directional term.")
    cc_temperature: float | None = Field(
        0.01, gt=0, description="Temperature of the class-consistency logits; null = LADS (none)."
    )
    cc_classes: Literal["target", "source", "class_text"] = Field(
        "target",
        description="Class text of the CE: target-domain prompts (LDFS), the first source "
        "prompt set, or the fixed plain class prompts of 'class_text_set' (LADS's 'a photo of a "
        "{c}' matrix, never noised).",
    )
    class_text_set: str = Field(
        "classes",
        description="Text set of the plain class prompts for cc_classes: class_text (e.g. "
        "core.clip_features prompt_sets: {classes: ['a photo of a {}']}).",
    )
    class_weighted: bool = Field(False, description="Weight the CE by 1/class count (LADS).")
    anchor: Literal["direction", "instance"] = Field(
        "direction", description="'instance': pull f~ to normalise(f + dt) (reconstructed reading)."
    )
    loss_type: Literal["cosine", "mse", "mae"] = Field(
        "cosine", description="Form of the directional term (LADS LOSS_TYPE)."
    )
    eps: float = Field(1e-8, gt=0, description="Added to the normaliser of f~ - f.")


class PairwiseRegularizerParams(Params):
    """Params of ``ldfs.pairwise_regularizer``."""

    weight: float = Field(1.0, ge=0, description="lambda_pair (reconstructed default 1.0).")
    pair_mode: Literal["pairwise", "nn_self", "anchor"] = Field(
        "pairwise", description="L_pair (LDFS, reconstructed) or the LADS nn_self / anchor terms."
    )
    nn_logit_scale: float = Field(
        math.exp(0.007), gt=0, description="Logit scale of nn_self (LADS: exp(0.007))."
    )
    diversity_weight: float = Field(
        0.0, ge=0, description="Weight of the mode-seeking diversity term (off by default; 0.1)."
    )


class SynthesisObjectiveParams(Params):
    """Params of ``ldfs.synthesis_objective``."""

    text_guided: TextGuidedLossParams = Field(default_factory=TextGuidedLossParams)
    pairwise: PairwiseRegularizerParams = Field(default_factory=PairwiseRegularizerParams)


class TextNoiseParams(Params):
    """Params of ``ldfs.text_noise``."""

    sigma: float = Field(0.1, ge=0, description="Noise level (reconstructed default 0.1).")
    convention: Literal["norm_relative", "per_dimension"] = Field(
        "norm_relative",
        description="norm_relative: eps ~ N(0, I/d), sigma = noise/signal norm; per_dimension: "
        "eps ~ N(0, I), sigma = per-dimension std (CapDec).",
    )


# --- stage 2: synthetic features and the heads that train on them -----------------------------


class FeatureSynthesisParams(Params):
    """Params of ``ldfs.feature_synthesis``."""

    synthesizer_file: str | None = Field(
        None, description="Synthesiser file written by stage 1 (<run>/ldfs/synthesizer-<stage>)."
    )
    from_stage: str | None = Field(
        None, description="Name of the stage-1 stage of this run whose synthesiser to use."
    )
    num_draws: int = Field(1, ge=1, description="Noise draws M per image and domain (K*M synth).")
    include_real: bool = Field(True, description="Keep the real features (real : synthetic 1:KM).")
    feature_key: str = Field("image", description="Batch key holding the real features.")

    @model_validator(mode="after")
    def _one_source(self) -> FeatureSynthesisParams:
        if (self.synthesizer_file is None) == (self.from_stage is None):
            raise ValueError("give exactly one of 'synthesizer_file' and 'from_stage'")
        return self


class FeatureBackboneParams(Params):
    """Params of ``ldfs.features``."""

    text_set: str = Field("source", description="Text set of the zero-shot logits (if present).")
    logit_scale: float = Field(100.0, gt=0, description="Multiplier of the zero-shot cosines.")


class LinearProbeParams(Params):
    """Params of ``ldfs.linear_probe``."""

    init: Literal["zeroshot", "random"] = Field(
        "zeroshot", description="Initialise the weights with the class text features (mlpzs)."
    )
    text_set: str = Field("source", description="Text set of the zero-shot initialisation.")
    logit_scale: float = Field(100.0, gt=0, description="Multiplier of f . W^T.")
    bias: bool = True
    wise_beta: float | None = Field(
        None, ge=0, le=1, description="WiSE: evaluate with (1-beta) W_zs + beta W_ft; null = off."
    )


class ClipAdapterHeadParams(Params):
    """Params of ``ldfs.clip_adapter``."""

    ratio: float = Field(0.2, ge=0, le=1, description="Residual ratio (CLIP-Adapter: 0.2).")
    reduction: int = Field(4, ge=1, description="Bottleneck reduction of the adapter MLP.")
    text_set: str = Field("source", description="Text set of the (fixed) classifier.")
    logit_scale: float = Field(100.0, gt=0, description="Multiplier of the cosine logits.")


class CoOpHeadParams(Params):
    """Params of ``ldfs.coop``."""

    n_ctx: int = Field(16, ge=1, description="Number of learned context tokens (CoOp: 16).")
    ctx_init: str | None = Field(
        None, description="Initialise the context from these words (e.g. 'a photo of a')."
    )
    init_std: float = Field(0.02, gt=0, description="Std of the random context initialisation.")
    logit_scale: float | None = Field(
        None, gt=0, description="Multiplier of the cosines; null = the CLIP model's own."
    )


# --- evaluation and data -----------------------------------------------------------------------


class DomainAccuracyParams(Params):
    """Params of ``ldfs.domain_accuracy``."""

    domains: list[str] | None = Field(
        None, description="Domain names by id; default: the data facts' extras['domains']."
    )
    domain_key: str = Field("domain", description="Batch key of the per-sample domain id.")
    source: int = Field(0, ge=0, description="Id of the source (seen) domain.")


class ToyClipSpaceParams(Params):
    """Params of ``ldfs.toy_clip_space``."""

    num_classes: int = Field(5, ge=2, description="Classes C.")
    samples_per_class: int = Field(200, ge=1, description="Source training images per class.")
    eval_per_class: int = Field(100, ge=1, description="Images per class and domain in val/test.")
    eta: float = Field(1.0, ge=0, description="Image noise level.")
    gap_norm: float = Field(0.5, ge=0, description="Norm of the modality-gap vector g.")
    target_domains: list[str] = Field(
        default_factory=lambda: ["sketch"], description="Names of the unseen target domains."
    )
    seed: int = Field(0, description="Seed of the space (class, style and gap vectors, samples).")
