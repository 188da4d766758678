"""Params of the long-tailed losses (re-weighting, logit adjustment, experts, metric learning).

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "BalancedSoftmaxLossParams",
    "CBLossParams",
    "CenterLossParams",
    "ConMixLossParams",
    "FocalLossParams",
    "GCLLossParams",
    "LADELossParams",
    "LDAMLossParams",
    "LabelAwareSmoothingLossParams",
    "LogitAdjustedLossParams",
    "RIDELossParams",
    "RangeLossParams",
    "SADELossParams",
    "SEQLLossParams",
    "SeesawLossParams",
    "VSLossParams",
    "WeightedCELossParams",
]


class _DRWParams(Params):
    """Deferred re-weighting schedule shared by weighted CE and LDAM."""

    drw_fraction: float = Field(
        0.8, ge=0, le=1, description="DRW starts at epoch int(drw_fraction · E) (MONICA: 0.8)."
    )
    drw_epoch: int | None = Field(
        None, ge=0, description="Absolute first DRW epoch; overrides drw_fraction when given."
    )
    drw_beta: float = Field(
        0.9999, ge=0, lt=1, description="β of the class-balanced weights used once DRW is on."
    )
    epochs: int | None = Field(
        None, ge=1, description="Total epochs E of the schedule; default: the stage's epochs."
    )


class WeightedCELossParams(_DRWParams):
    """Params of :class:`~asklepios_longtail.losses.reweighting.WeightedCELoss`."""

    class_weights: Literal["none", "cb", "log_inverse", "grw"] = Field(
        "none",
        description="Class weights: none (ERM), cb (RW), log_inverse (WeightedSoftmax), grw "
        "(DisAlign's generalised re-weighting).",
    )
    beta: float = Field(0.9999, ge=0, lt=1, description="β of the cb weights.")
    q: float = Field(1.2, description="Exponent of the grw weights π_c^{-q} (exp_scale).")
    drw: bool = Field(
        False, description="Deferred re-weighting: uniform weights before the DRW epoch."
    )


class FocalLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.reweighting.FocalLoss`."""

    gamma: float = Field(2.0, ge=0, description="Focusing parameter γ (MONICA: 2).")


class CBLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.reweighting.CBLoss`."""

    variant: Literal["softmax_bce", "sigmoid_focal"] = Field(
        "softmax_bce",
        description="softmax_bce (MONICA CBLoss: BCE on softmax probabilities) or sigmoid_focal "
        "(CBLoss_Focal).",
    )
    beta: float = Field(0.9999, ge=0, lt=1, description="β of the class-balanced weights.")
    gamma: float = Field(2.0, ge=0, description="Focusing γ of the sigmoid_focal variant.")


class LDAMLossParams(_DRWParams):
    """Params of :class:`~asklepios_longtail.losses.reweighting.LDAMLoss`."""

    max_m: float = Field(0.5, ge=0, description="Margin M of the rarest class.")
    s: float = Field(30.0, gt=0, description="Logit scale s.")
    drw: bool = Field(True, description="Deferred re-weighting (LDAM-DRW); false = plain LDAM.")


class LabelAwareSmoothingLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.reweighting.LabelAwareSmoothingLoss`."""

    shape: Literal["concave", "linear", "convex", "exp"] = Field(
        "concave", description="Shape of ε_c over class counts (MiSLAS: concave)."
    )
    eps_head: float = Field(0.3, ge=0, le=1, description="ε of the most frequent class.")
    eps_tail: float = Field(0.0, ge=0, le=1, description="ε of the rarest class.")
    power: float = Field(2.0, gt=0, description="Power of the exp shape.")


class BalancedSoftmaxLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.BalancedSoftmaxLoss`."""

    prior: Literal["counts", "frequency"] = Field(
        "counts",
        description="counts: add log n_c (BalancedSoftmax); frequency: add log(π_c + 1e-9) "
        "(PriorCELoss / LADE-CE). Both give the same loss.",
    )


class LogitAdjustedLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.LogitAdjustedLoss`."""

    tau: float = Field(1.0, description="Temperature τ of the adjustment.")
    monica_sign: bool = Field(
        False,
        description="Subtract the adjustment as MONICA's main.py does (a sign bug that makes the "
        "classifier more head-biased); default: the paper's sign (spec §0.3 #5).",
    )
    eps: float = Field(1e-12, gt=0, description="Added inside the log of (n_c/n_max)^τ.")


class LADELossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.LADELoss`."""

    remine_lambda: float = Field(0.1, ge=0, description="λ of the ReMINE regulariser B_c².")
    weight: float = Field(
        0.1, ge=0, description="Weight of the LADE regulariser (MONICA HEAD 0.1; results era 1)."
    )


class VSLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.VSLoss`."""

    gamma: float = Field(0.3, description="Exponent γ of the multiplicative factor (n_c/n_max)^γ.")
    tau: float = Field(1.0, description="Weight τ of the additive term τ·log π_c.")


class SEQLLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.SEQLLoss`."""

    gamma: float = Field(0.9, ge=0, le=1, description="A rare class's logit is kept if u > γ.")
    lambda_threshold: float = Field(
        0.00043, ge=0, description="λ: a class is rare if its prior π_j ≤ λ."
    )


class GCLLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.GCLLoss`."""

    m: float = Field(0.0, description="Margin subtracted from the target cosine.")
    s: float = Field(30.0, gt=0, description="Scale applied to the perturbed cosines.")
    noise_mul: float = Field(0.5, ge=0, description="Cloud size multiplier κ.")
    sigma: float = Field(1 / 3, gt=0, description="Standard deviation of the Gaussian noise ε.")


class SeesawLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.adjustment.SeesawLoss`."""

    p: float = Field(0.8, ge=0, description="Exponent of the mitigation factor.")
    q: float = Field(2.0, ge=0, description="Exponent of the compensation factor.")
    counts: Literal["online", "fixed"] = Field(
        "online",
        description="online: cumulative per-class counts of the labels seen in training "
        "(the paper); fixed: the training split's class counts.",
    )
    eps: float = Field(1e-2, gt=0, description="Clamp of the target probability in σ_j/σ_i.")


class SADELossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.experts.SADELoss`."""

    tau: float = Field(2.0, description="Strength τ of the inverted-prior adjustment of expert 3.")


class RIDELossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.experts.RIDELoss`."""

    max_m: float = Field(0.5, ge=0, description="LDAM margin of the rarest class.")
    s: float = Field(30.0, gt=0, description="Logit scale of the experts (margins scale by s).")
    base_loss_factor: float = Field(1.0, description="Weight of each expert's LDAM loss.")
    base_diversity_temperature: float = Field(1.0, gt=0, description="Diversity temperature T.")
    additional_diversity_factor: float = Field(
        -0.2, description="Weight of the KL diversity term (negative: rewards diversity)."
    )
    reweight: bool = Field(True, description="Turn on DRW weights and class temperatures.")
    reweight_fraction: float = Field(
        0.8, ge=0, le=1, description="Re-weighting starts at epoch int(fraction · E)."
    )
    reweight_epoch: int | None = Field(None, ge=0, description="Absolute first re-weight epoch.")
    reweight_factor: float = Field(0.05, ge=0, description="Strength of the class temperatures.")
    beta: float = Field(0.9999, ge=0, lt=1, description="β of the deferred CB weights.")
    epochs: int | None = Field(None, ge=1, description="Total epochs; default: stage epochs.")


class CenterLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.representation.CenterLoss`."""

    variant: Literal["origin", "cos", "triplet"] = Field(
        "triplet", description="Center term: origin (squared L2), cos (1 − cosine) or triplet."
    )
    feat_dim: int = Field(2048, ge=1, description="Width d of the features (ResNet-50: 2048).")
    term_weights: tuple[float, float, float] = Field(
        (0.0, 0.001, 0.005), description="Center-term weight before / between / after the cuts."
    )
    cuts: tuple[float, float] = Field(
        (0.6, 0.8), description="Weight changes at epochs int(cut · E)."
    )
    margin: float = Field(1.0, description="Margin of the triplet variant.")
    centers_not_optimised: bool = Field(
        False,
        description="Keep the centers as fixed random buffers, as MONICA (its optimiser never "
        "receives them; spec §0.3 #8). Default: trainable parameters.",
    )
    epochs: int | None = Field(None, ge=1, description="Total epochs E; default: stage epochs.")


class RangeLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.representation.RangeLoss`."""

    k: int = Field(2, ge=1, description="Number of largest intra-class distances used.")
    margin: float = Field(0.1, description="Margin of the inter-class term.")
    alpha: float = Field(0.5, description="Weight of the intra-class term.")
    beta: float = Field(0.5, description="Weight of the inter-class term.")
    range_loss_alone: bool = Field(
        False,
        description="Optimise the range term alone with no CE, as MONICA does (training "
        "collapses; spec §0.3 #7). Default: CE + range term.",
    )
    input: Literal["features", "logits"] | None = Field(
        None,
        description="What the range term acts on; default logits with range_loss_alone "
        "(MONICA), else features.",
    )


class ConMixLossParams(Params):
    """Params of :class:`~asklepios_longtail.losses.representation.ConMixLoss`."""

    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature t.")
    second_view_key: str = Field(
        "features_view2", description="Output key holding the second view's features."
    )
