"""Private pure functions on discrete-time densities, shared by the loss and the evaluator."""

from __future__ import annotations

import torch
from asklepios_sdk import ComponentError
from torch import Tensor

__all__ = ["as_logits", "pdf_moments", "predict_time", "survival_curve"]


def as_logits(logits: Tensor) -> Tensor:
    """Return logits as ``(B, T_max)``, accepting the original's ``(B, T_max, 1)`` as well."""
    if logits.dim() == 3 and logits.shape[-1] == 1:
        logits = logits.squeeze(-1)
    if logits.dim() != 2:
        raise ComponentError(
            "expected logits of shape (batch, T_max) or (batch, T_max, 1), "
            f"got {tuple(logits.shape)}"
        )
    return logits


def pdf_moments(logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return the softmax density ``p`` over bins ``0..T_max-1``, its mean and its variance."""
    prob = torch.softmax(logits, dim=-1)
    bins = torch.arange(logits.shape[-1], dtype=prob.dtype, device=prob.device)
    mean = (prob * bins).sum(-1)
    var = (prob * (bins - mean.unsqueeze(-1)) ** 2).sum(-1)
    return prob, mean, var


def survival_curve(logits: Tensor) -> Tensor:
    """Return ``S(k) = 1 - sum_{j<=k} p_j`` for every bin ``k`` (so ``S(T_max-1) = 0``)."""
    prob = torch.softmax(as_logits(logits), dim=-1)
    return (1.0 - torch.cumsum(prob, dim=-1)).clamp_min(0.0)


def predict_time(logits: Tensor, method: str = "mean") -> Tensor:
    """Predict the event time: ``sum_k S(k)`` (``mean``) or the first ``k`` with ``S(k) < 0.5``.

    The median of a curve that never falls below 0.5 is ``T_max``.
    """
    surv = survival_curve(logits)
    if method == "mean":
        return surv.sum(-1)
    if method == "median":
        below = surv < 0.5
        first = torch.argmax(below.to(torch.int8), dim=-1).to(surv.dtype)
        return torch.where(below.any(-1), first, torch.full_like(first, surv.shape[-1]))
    raise ComponentError(f"pred_method must be 'mean' or 'median', got {method!r}")
