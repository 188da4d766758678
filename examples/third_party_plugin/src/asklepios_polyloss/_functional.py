"""Pure functions of the PolyLoss family; the loss modules only validate and reduce."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def soft_targets(
    label: Tensor,
    num_classes: int,
    label_b: Tensor | None = None,
    lam: Tensor | float | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Return target distributions ``q`` of shape ``[B, K]``.

    Integer labels become one-hot rows, a ``[B, K]`` float label is taken as given; a mixing
    transform's ``label_b`` / ``lam`` give ``lam * q(label) + (1 - lam) * q(label_b)``; label
    smoothing then gives ``(1 - s) * q + s / K``.
    """

    def one(y: Tensor) -> Tensor:
        if y.dim() == 2 and y.is_floating_point():
            return y.float()
        return torch.nn.functional.one_hot(y.long(), num_classes).float()

    q = one(label)
    if label_b is not None:
        weight = torch.as_tensor(1.0 if lam is None else lam, dtype=q.dtype, device=q.device)
        weight = weight.reshape(-1, 1) if weight.dim() == 1 else weight
        q = weight * q + (1 - weight) * one(label_b)
    if label_smoothing:
        q = (1 - label_smoothing) * q + label_smoothing / num_classes
    return q


def poly_softmax(
    logits: Tensor, targets: Tensor, epsilon: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """Return per-sample ``(CE, sum_j eps_j (1 - p_t)^j)`` with ``p_t = sum_k q_k p_k``.

    ``CE = -sum_k q_k log p_k``; for a one-hot ``q`` this is ``-log p_t``, the leading term of the
    expansion ``sum_j (1 - p_t)^j / j`` whose first ``N = len(epsilon)`` coefficients Poly-N
    perturbs (Leng et al., 2022, eq. 2-3).
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)
    ce = -(targets * log_p).sum(-1)
    one_minus_pt = 1 - (targets * log_p.exp()).sum(-1)
    poly = torch.zeros_like(ce)
    for j, eps in enumerate(epsilon, start=1):
        poly = poly + eps * one_minus_pt.pow(j)
    return ce, poly


def poly_focal(
    logits: Tensor, targets: Tensor, epsilon: float, gamma: float, alpha: float | None
) -> tuple[Tensor, Tensor]:
    """Return elementwise ``(FL, eps (1 - p_t)^(gamma + 1))`` of sigmoid outputs.

    ``p_t = y p + (1 - y)(1 - p)``, ``FL = alpha_t (1 - p_t)^gamma BCE`` with
    ``alpha_t = alpha y + (1 - alpha)(1 - y)`` when ``alpha`` is given (Lin et al., 2017); the
    poly term is not alpha-weighted, as in the paper's code listing.
    """
    logits = logits.float()
    p = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pt = targets * p + (1 - targets) * (1 - p)
    focal = bce * (1 - pt).pow(gamma)
    if alpha is not None:
        focal = (alpha * targets + (1 - alpha) * (1 - targets)) * focal
    return focal, epsilon * (1 - pt).pow(gamma + 1)
