"""Re-weighting losses: weighted CE (RW, WeightedSoftmax, GRW, DRW), Focal, CB loss, LDAM, LAS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, Params
from pydantic import Field
from torch import Tensor

from asklepios_longtail import _functional as fn
from asklepios_longtail.losses._base import MixableLoss, class_buffer, sample_mean, weighted_ce

__all__ = [
    "CBLoss",
    "CBLossParams",
    "FocalLoss",
    "FocalParams",
    "LDAMLoss",
    "LDAMParams",
    "LabelAwareSmoothingLoss",
    "LabelAwareSmoothingParams",
    "WeightedCELoss",
    "WeightedCEParams",
]


class _DRWParams(Params):
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


class WeightedCEParams(_DRWParams):
    """Params of :class:`WeightedCELoss`."""

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


class WeightedCELoss(MixableLoss):
    """Compute class-weighted cross-entropy Σ w_y CE / Σ w_y, optionally deferred (DRW).

    Class weights: ``cb`` w_c ∝ (1−β)/(1−β^{n_c}) with Σw = C (RW); ``log_inverse``
    w_c = 1 + log(n_max/n_c) (WeightedSoftmax); ``grw`` w_c ∝ π_c^{−q} with Σw = C (GRW). With
    ``drw`` the weights are uniform for e < int(0.8E) and CB(drw_beta) from then on (DRW-CE).

    References: Cui et al., CVPR 2019; Cao et al., NeurIPS 2019 (DRW); Zhang et al., CVPR 2021
    (GRW).
    """

    component_id = "longtail.weighted_ce"

    def __init__(self, params: WeightedCEParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        self.drw_start = fn.drw_start(
            params.epochs or ctx.epochs, params.drw_fraction, params.drw_epoch
        )
        base = None
        counts = None
        if params.class_weights != "none" or params.drw:
            counts = fn.check_counts(ctx.data.class_counts, self.component_id)
        if params.class_weights == "cb":
            base = fn.cb_weights(counts, params.beta)
        elif params.class_weights == "log_inverse":
            base = fn.log_inverse_weights(counts)
        elif params.class_weights == "grw":
            base = fn.grw_weights(counts, params.q)
        self.register_buffer("base_weight", None if base is None else class_buffer(base))
        drw = fn.cb_weights(counts, params.drw_beta) if params.drw else None
        self.register_buffer("drw_weight", None if drw is None else class_buffer(drw))

    def current_weight(self) -> Tensor | None:
        """Return the class weights in force at the current epoch (``None`` = uniform)."""
        if self.params.drw:
            return self.drw_weight if self.epoch >= self.drw_start else self.base_weight
        return self.base_weight

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        return {"ce": weighted_ce(logits, target, self.current_weight(), sample_weight)}


class FocalParams(Params):
    """Params of :class:`FocalLoss`."""

    gamma: float = Field(2.0, ge=0, description="Focusing parameter γ (MONICA: 2).")


class FocalLoss(MixableLoss):
    """Compute the focal loss mean_i (1 − p_i)^γ CE_i with p_i = exp(−CE_i) (no α, no weights).

    References: Lin et al., ICCV 2017. MONICA ``losses/Focal.py``.
    """

    component_id = "longtail.focal"

    def __init__(self, params: FocalParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        ce = F.cross_entropy(self.logits(outputs), target, reduction="none")
        focal = (1 - torch.exp(-ce)) ** self.params.gamma * ce
        return {"focal": sample_mean(focal, sample_weight)}


class CBLossParams(Params):
    """Params of :class:`CBLoss`."""

    variant: Literal["softmax_bce", "sigmoid_focal"] = Field(
        "softmax_bce",
        description="softmax_bce (MONICA CBLoss: BCE on softmax probabilities) or sigmoid_focal "
        "(CBLoss_Focal).",
    )
    beta: float = Field(0.9999, ge=0, lt=1, description="β of the class-balanced weights.")
    gamma: float = Field(2.0, ge=0, description="Focusing γ of the sigmoid_focal variant.")


class CBLoss(MixableLoss):
    """Compute the class-balanced loss of Cui et al. in MONICA's two variants.

    ``softmax_bce``: (1/(B·C)) Σ_i Σ_j w_{y_i} BCE(softmax(z)_ij, t_ij), logs clamped at −100.
    ``sigmoid_focal``: Σ_i Σ_j w_{y_i} (1 − p_t,ij)^γ BCE(σ(z_ij), t_ij) / B with the modulator in
    the stable form exp(−γ t z − γ log(1 + e^{−z})). w = CB weights (β, Σw = C).

    References: Cui et al., CVPR 2019. MONICA ``losses/CBLoss.py``.
    """

    component_id = "longtail.cb_loss"

    def __init__(self, params: CBLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, self.component_id)
        self.register_buffer("class_weight", class_buffer(fn.cb_weights(counts, params.beta)))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        num_classes = logits.shape[1]
        onehot = F.one_hot(target, num_classes).to(logits.dtype)
        w = self.class_weight.to(logits.dtype)[target]
        if sample_weight is not None:
            w = w * sample_weight
        if self.params.variant == "softmax_bce":
            probs = logits.softmax(dim=1)
            bce = F.binary_cross_entropy(probs, onehot, reduction="none")
            return {"cb_bce": (w[:, None] * bce).mean()}
        bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        gamma = self.params.gamma
        modulator = torch.exp(-gamma * onehot * logits - gamma * F.softplus(-logits))
        return {"cb_focal": (w[:, None] * modulator * bce).sum() / logits.shape[0]}


class LDAMParams(_DRWParams):
    """Params of :class:`LDAMLoss`."""

    max_m: float = Field(0.5, ge=0, description="Margin M of the rarest class.")
    s: float = Field(30.0, gt=0, description="Logit scale s.")
    drw: bool = Field(True, description="Deferred re-weighting (LDAM-DRW); false = plain LDAM.")


class LDAMLoss(MixableLoss):
    """Compute LDAM(-DRW): weighted CE(s·(z − m_y e_y), y), m_c = M n_c^{-1/4}/max_k n_k^{-1/4}.

    Weights are uniform before epoch int(0.8E) and CB(β = 0.9999, Σw = C) from then on (``drw``).
    MONICA applies it to a plain linear head; pair it with ``longtail.cosine_head`` for the
    original method (spec §0.3 #13). ``drw: false`` reproduces the results-era code (§0.3 #2).

    References: Cao et al., NeurIPS 2019. MONICA ``losses/LDAMLoss.py``.
    """

    component_id = "longtail.ldam"

    def __init__(self, params: LDAMParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, self.component_id)
        self.drw_start = fn.drw_start(
            params.epochs or ctx.epochs, params.drw_fraction, params.drw_epoch
        )
        self.register_buffer("margins", class_buffer(fn.ldam_margins(counts, params.max_m)))
        self.register_buffer("drw_weight", class_buffer(fn.cb_weights(counts, params.drw_beta)))

    def current_weight(self) -> Tensor | None:
        """Return the class weights in force at the current epoch (``None`` = uniform)."""
        if self.params.drw and self.epoch >= self.drw_start:
            return self.drw_weight
        return None

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        shifted = logits - onehot * self.margins.to(logits.dtype)[target][:, None]
        ce = weighted_ce(self.params.s * shifted, target, self.current_weight(), sample_weight)
        return {"ldam": ce}


class LabelAwareSmoothingParams(Params):
    """Params of :class:`LabelAwareSmoothingLoss`."""

    shape: Literal["concave", "linear", "convex", "exp"] = Field(
        "concave", description="Shape of ε_c over class counts (MiSLAS: concave)."
    )
    eps_head: float = Field(0.3, ge=0, le=1, description="ε of the most frequent class.")
    eps_tail: float = Field(0.0, ge=0, le=1, description="ε of the rarest class.")
    power: float = Field(2.0, gt=0, description="Power of the exp shape.")


class LabelAwareSmoothingLoss(MixableLoss):
    """Compute MiSLAS label-aware smoothing: (1−ε_y)·CE + ε_y·mean_j(−log p_j).

    ε_c follows the chosen shape between ε_tail (rarest) and ε_head (most frequent class).

    References: Zhong et al., CVPR 2021 (MiSLAS). MONICA ``losses/LabelAwareSmoothing.py``.
    """

    component_id = "longtail.label_aware_smoothing"

    def __init__(self, params: LabelAwareSmoothingParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, self.component_id)
        eps = fn.label_aware_epsilon(
            counts, params.shape, params.eps_head, params.eps_tail, params.power
        )
        self.register_buffer("epsilon", class_buffer(eps))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logp = self.logits(outputs).log_softmax(dim=1)
        eps = self.epsilon.to(logp.dtype)[target]
        nll = -logp.gather(1, target[:, None]).squeeze(1)
        smooth = -logp.mean(dim=1)
        return {"las": sample_mean((1 - eps) * nll + eps * smooth, sample_weight)}
