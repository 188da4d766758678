"""Re-weighting losses: weighted CE (RW, WeightedSoftmax, GRW, DRW), Focal, CB loss, LDAM, LAS."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext
from torch import Tensor

from asklepios_longtail import _functional as fn
from asklepios_longtail.losses._base import MixableLoss, class_buffer, sample_mean, weighted_ce
from asklepios_longtail.params import (
    CBLossParams,
    FocalLossParams,
    LabelAwareSmoothingLossParams,
    LDAMLossParams,
    WeightedCELossParams,
)

__all__ = [
    "CBLoss",
    "FocalLoss",
    "LDAMLoss",
    "LabelAwareSmoothingLoss",
    "WeightedCELoss",
]


class WeightedCELoss(MixableLoss):
    """Compute class-weighted cross-entropy Σ w_y CE / Σ w_y, optionally deferred (DRW).

    Class weights: ``cb`` w_c ∝ (1−β)/(1−β^{n_c}) with Σw = C (RW); ``log_inverse``
    w_c = 1 + log(n_max/n_c) (WeightedSoftmax); ``grw`` w_c ∝ π_c^{−q} with Σw = C (GRW). With
    ``drw`` the weights are uniform for e < int(0.8E) and CB(drw_beta) from then on (DRW-CE).

    References: Cui et al., CVPR 2019; Cao et al., NeurIPS 2019 (DRW); Zhang et al., CVPR 2021
    (GRW).
    """

    base_weight: Tensor | None
    drw_weight: Tensor | None

    def __init__(self, params: WeightedCELossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        self.drw_start = fn.drw_start(
            params.epochs or ctx.epochs, params.drw_fraction, params.drw_epoch
        )
        base: np.ndarray | None = None
        drw: np.ndarray | None = None
        if params.class_weights != "none" or params.drw:
            counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
            if params.class_weights == "cb":
                base = fn.cb_weights(counts, params.beta)
            elif params.class_weights == "log_inverse":
                base = fn.log_inverse_weights(counts)
            elif params.class_weights == "grw":
                base = fn.grw_weights(counts, params.q)
            if params.drw:
                drw = fn.cb_weights(counts, params.drw_beta)
        self.register_buffer("base_weight", None if base is None else class_buffer(base))
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


class FocalLoss(MixableLoss):
    """Compute the focal loss mean_i (1 − p_i)^γ CE_i with p_i = exp(−CE_i) (no α, no weights).

    References: Lin et al., ICCV 2017. MONICA ``losses/Focal.py``.
    """

    def __init__(self, params: FocalLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        ce = F.cross_entropy(self.logits(outputs), target, reduction="none")
        focal = (1 - torch.exp(-ce)) ** self.params.gamma * ce
        return {"focal": sample_mean(focal, sample_weight)}


class CBLoss(MixableLoss):
    """Compute the class-balanced loss of Cui et al. in MONICA's two variants.

    ``softmax_bce``: (1/(B·C)) Σ_i Σ_j w_{y_i} BCE(softmax(z)_ij, t_ij), logs clamped at −100.
    ``sigmoid_focal``: Σ_i Σ_j w_{y_i} (1 − p_t,ij)^γ BCE(σ(z_ij), t_ij) / B with the modulator in
    the stable form exp(−γ t z − γ log(1 + e^{−z})). w = CB weights (β, Σw = C).

    References: Cui et al., CVPR 2019. MONICA ``losses/CBLoss.py``.
    """

    class_weight: Tensor

    def __init__(self, params: CBLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
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


class LDAMLoss(MixableLoss):
    """Compute LDAM(-DRW): weighted CE(s·(z − m_y e_y), y), m_c = M n_c^{-1/4}/max_k n_k^{-1/4}.

    Weights are uniform before epoch int(0.8E) and CB(β = 0.9999, Σw = C) from then on (``drw``).
    MONICA applies it to a plain linear head; pair it with ``longtail.cosine_head`` for the
    original method (spec §0.3 #13). ``drw: false`` reproduces the results-era code (§0.3 #2).

    References: Cao et al., NeurIPS 2019. MONICA ``losses/LDAMLoss.py``.
    """

    margins: Tensor
    drw_weight: Tensor

    def __init__(self, params: LDAMLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
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


class LabelAwareSmoothingLoss(MixableLoss):
    """Compute MiSLAS label-aware smoothing: (1−ε_y)·CE + ε_y·mean_j(−log p_j).

    ε_c follows the chosen shape between ε_tail (rarest) and ε_head (most frequent class).

    References: Zhong et al., CVPR 2021 (MiSLAS). MONICA ``losses/LabelAwareSmoothing.py``.
    """

    epsilon: Tensor

    def __init__(self, params: LabelAwareSmoothingLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
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
