"""PolyLoss (Leng et al., ICLR 2022): cross-entropy and focal loss with perturbed poly terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from asklepios_sdk import Batch, BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

from asklepios_polyloss._functional import poly_focal, poly_softmax, soft_targets
from asklepios_polyloss.params import PolyFocalLossParams, PolyLossParams

__all__ = ["PolyFocalLoss", "PolyLoss"]


class PolyLoss(Loss):
    """Compute Poly-N: mean of ``CE + sum_{j=1..N} eps_j (1 - p_t)^j`` on softmax outputs.

    Cross-entropy expands as ``-log p_t = sum_{j>=1} (1 - p_t)^j / j``; Poly-N adds ``eps_j`` to
    the first ``N`` coefficients. Poly-1 (the default, ``eps = 1``) is
    ``CE + eps (1 - p_t)``, with gradient ``(p - y)(1 + eps p_t)`` in the logits. ``p_t`` is
    ``sum_k q_k p_k`` over the target distribution ``q`` (one-hot, mixed by ``label_b`` /
    ``lam``, or smoothed), as in the paper's code listing.

    References: Leng et al., PolyLoss: A Polynomial Expansion Perspective of Classification Loss
    Functions, ICLR 2022.
    """

    def __init__(self, params: PolyLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.epsilon = tuple(params.epsilon)
        self.label_smoothing = params.label_smoothing

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        if logits.dim() != 2:
            raise ComponentError(
                f"polyloss.poly needs logits of shape [batch, classes], got {tuple(logits.shape)}"
            )
        targets = soft_targets(
            batch["label"],
            logits.shape[-1],
            batch.get("label_b"),
            batch.get("lam"),
            self.label_smoothing,
        )
        ce, poly = poly_softmax(logits, targets, self.epsilon)
        ce, poly = ce.mean(), poly.mean()
        return LossOutput(ce + poly, {"ce": ce, "poly": poly})


class PolyFocalLoss(Loss):
    """Compute Poly-1 focal loss: mean of ``FL + eps (1 - p_t)^(gamma + 1)`` on sigmoid outputs.

    For binary or multi-label targets: ``label`` is a ``[B, K]`` multi-hot float tensor, or class
    indices ``[B]`` (one-hot, one-vs-rest). The mean runs over every element.

    References: Leng et al., PolyLoss, ICLR 2022; Lin et al., Focal Loss for Dense Object
    Detection, ICCV 2017.
    """

    def __init__(self, params: PolyFocalLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.epsilon = params.epsilon
        self.gamma = params.gamma
        self.alpha = params.alpha

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        label = batch["label"]
        if label.dim() == 1 and logits.dim() == 2:
            targets = torch.nn.functional.one_hot(label.long(), logits.shape[-1]).float()
        else:
            targets = label.float()
        if targets.shape != logits.shape:
            raise ComponentError(
                f"polyloss.poly_focal needs targets shaped like the logits {tuple(logits.shape)} "
                f"(multi-hot) or class indices [batch]; got label {tuple(label.shape)}"
            )
        focal, poly = poly_focal(logits, targets, self.epsilon, self.gamma, self.alpha)
        focal, poly = focal.mean(), poly.mean()
        return LossOutput(focal + poly, {"focal": focal, "poly": poly})
