"""Logit-adjustment losses: BalancedSoftmax/PriorCE, LA, LADE, VS, SEQL, GCL, Seesaw."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, LossOutput
from torch import Tensor

from asklepios_longtail import _functional as fn
from asklepios_longtail.losses._base import MixableLoss, class_buffer, weighted_ce
from asklepios_longtail.params import (
    BalancedSoftmaxLossParams,
    GCLLossParams,
    LADELossParams,
    LogitAdjustedLossParams,
    SeesawLossParams,
    SEQLLossParams,
    VSLossParams,
)

__all__ = [
    "BalancedSoftmaxLoss",
    "GCLLoss",
    "LADELoss",
    "LogitAdjustedLoss",
    "SEQLLoss",
    "SeesawLoss",
    "VSLoss",
]


class BalancedSoftmaxLoss(MixableLoss):
    """Compute CE(z + log n, y) (Balanced Softmax) or CE(z + log(π + 1e−9), y) (PriorCE).

    The adjustment is applied to the loss only; the model's raw logits are evaluated.

    References: Ren et al., NeurIPS 2020; Hong et al., CVPR 2021 (LADE). MONICA
    ``losses/BalancedSoftmax.py``, ``losses/PriorCELoss.py``.
    """

    shift: Tensor

    def __init__(self, params: BalancedSoftmaxLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        shift = np.log(counts) if params.prior == "counts" else np.log(fn.prior(counts) + 1e-9)
        self.register_buffer("shift", class_buffer(shift))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs) + self.shift.to(self.logits(outputs).dtype)
        return {"balanced_ce": weighted_ce(logits, target, None, sample_weight)}


class LogitAdjustedLoss(MixableLoss):
    """Compute the logit-adjusted loss CE(z + log((n/n_max)^τ + ε), y) of Menon et al.

    With ``monica_sign`` the adjustment is subtracted instead, as in MONICA's
    ``Logits_Adjust_Loss`` (reproduces its published numbers). With τ = 1 the paper sign equals
    Balanced Softmax.

    References: Menon et al., ICLR 2021. MONICA ``main.py`` (inline).
    """

    shift: Tensor

    def __init__(self, params: LogitAdjustedLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        adjustment = np.log(np.power(counts / counts.max(), params.tau) + params.eps)
        sign = -1.0 if params.monica_sign else 1.0
        self.register_buffer("shift", class_buffer(sign * adjustment))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        adjusted = logits + self.shift.to(logits.dtype)
        return {"la_ce": weighted_ce(adjusted, target, None, sample_weight)}


class LADELoss(MixableLoss):
    """Compute PriorCE + w·L_LADE, the label-distribution-disentangling loss of Hong et al.

    a_ic = z_ic − log(π_c + 1e−9) + log(1/C + 1e−9); A_c = Σ_{y_i=c} z_ic / (b_c + 1e−8);
    B_c = logsumexp_i a_ic − log B; L_LADE = −Σ_c π_c (A_c − B_c − λ B_c²).

    References: Hong et al., CVPR 2021. MONICA ``losses/LADELoss.py``.
    """

    per_sample_mixing = False
    pi: Tensor
    log_prior: Tensor

    def __init__(self, params: LADELossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        pi = fn.prior(counts)
        self.register_buffer("pi", class_buffer(pi))
        self.register_buffer("log_prior", class_buffer(np.log(pi + 1e-9)))
        self.balanced_log_prior = math.log(1.0 / counts.size + 1e-9)

    def regulariser(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return L_LADE (without its weight) for one batch."""
        num_classes = logits.shape[1]
        onehot = F.one_hot(target, num_classes).to(logits.dtype)
        per_class = onehot.sum(dim=0)
        first = (logits * onehot).sum(dim=0) / (per_class + 1e-8)
        adjusted = logits - self.log_prior.to(logits.dtype) + self.balanced_log_prior
        second = torch.logsumexp(adjusted, dim=0) - math.log(logits.shape[0])
        estimate = first - second - self.params.remine_lambda * second**2
        return -(estimate * self.pi.to(logits.dtype)).sum()

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        prior_ce = F.cross_entropy(logits + self.log_prior.to(logits.dtype), target)
        return {
            "prior_ce": prior_ce,
            "lade": self.params.weight * self.regulariser(logits, target),
        }


class VSLoss(MixableLoss):
    """Compute the vector-scaling loss CE(z_c·(n_c/n_max)^γ + τ·log π_c, y).

    References: Kini et al., NeurIPS 2021. MONICA ``losses/VSLoss.py``.
    """

    scale: Tensor
    offset: Tensor

    def __init__(self, params: VSLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        self.register_buffer("scale", class_buffer(fn.vs_scales(counts, params.gamma)))
        self.register_buffer("offset", class_buffer(params.tau * np.log(fn.prior(counts))))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        adjusted = logits * self.scale.to(logits.dtype) + self.offset.to(logits.dtype)
        return {"vs_ce": weighted_ce(adjusted, target, None, sample_weight)}


class SEQLLoss(MixableLoss):
    """Compute the softmax equalization loss: CE with rare non-target logits randomly masked.

    Class j's logit of sample i is kept when j = y_i, π_j > λ, or u_ij > γ (u ~ U(0, 1) fresh per
    call); dropped logits become −1e7. Equals CE whenever every π_j > λ.

    References: Tan et al., CVPR 2020 (softmax EQL). MONICA ``losses/SEQLLoss.py``.
    """

    rare: Tensor

    def __init__(self, params: SEQLLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__, positive=False)
        rare = fn.prior(counts) <= params.lambda_threshold
        self.register_buffer("rare", torch.as_tensor(rare, dtype=torch.bool))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        is_target = F.one_hot(target, logits.shape[1]).bool()
        keep = is_target | ~self.rare[None, :]
        if bool(self.rare.any()):
            draws = torch.rand(logits.shape, device=logits.device)
            keep = keep | (draws > self.params.gamma)
        masked = logits.masked_fill(~keep, -1e7)
        return {"seql_ce": weighted_ce(masked, target, None, sample_weight)}


class GCLLoss(MixableLoss):
    """Compute the Gaussian-clouded logit loss on cosine outputs of a normalised head.

    c'_ij = c_ij − κ |ε_ij| m_j / max_k m_k with m_j = log n_max − log n_j and ε ~ N(0, σ) clamped
    to [−1, 1], fresh per call, on every class column; the target column loses the margin m;
    loss = CE(s · c', y). ``outputs["logits"]`` must be cosines (``longtail.cosine_head``).
    Set :attr:`fixed_noise` to inject the |ε| matrix (tests).

    References: Li et al., CVPR 2022 (GCL). MONICA ``losses/GCLLoss.py``.
    """

    relative_cloud: Tensor

    def __init__(self, params: GCLLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        clouds = np.log(counts.max()) - np.log(counts)
        relative = clouds / clouds.max() if clouds.max() > 0 else np.zeros_like(clouds)
        self.register_buffer("relative_cloud", class_buffer(relative))
        self.fixed_noise: Tensor | None = None

    def noise(self, like: Tensor) -> Tensor:
        """Return |ε| for a batch: the injected matrix if set, otherwise a fresh draw."""
        if self.fixed_noise is not None:
            return self.fixed_noise.to(like)
        draw = torch.randn(like.shape, device=like.device, dtype=like.dtype) * self.params.sigma
        return draw.clamp(-1, 1).abs()

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        cosine = self.logits(outputs)
        perturbed = cosine - self.params.noise_mul * self.noise(cosine) * self.relative_cloud.to(
            cosine.dtype
        )
        onehot = F.one_hot(target, cosine.shape[1]).to(cosine.dtype)
        perturbed = perturbed - self.params.m * onehot
        return {"gcl": weighted_ce(self.params.s * perturbed, target, None, sample_weight)}


class SeesawLoss(MixableLoss):
    """Compute the Seesaw loss: CE after adding log(M_ij·C_ij) to each non-target logit j.

    M_ij = (N_j/N_i)^p if N_j < N_i else 1 (N: cumulative class counts); C_ij = (σ_j/σ_i)^q if
    σ_j > σ_i else 1 (σ: softmax probabilities, no gradient through the factor). Beyond MONICA.

    References: Wang et al., CVPR 2021.
    """

    cum_samples: Tensor

    def __init__(self, params: SeesawLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        if params.counts == "fixed":
            counts = fn.check_counts(ctx.data.class_counts, type(self).__name__, positive=False)
        else:
            num_classes = ctx.data.num_classes or (
                len(ctx.data.class_counts) if ctx.data.class_counts else 0
            )
            counts = np.zeros(max(int(num_classes), 1))
        self.register_buffer("cum_samples", torch.as_tensor(counts, dtype=torch.float64))

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        if self.params.counts == "online" and self.training:
            logits = self.logits(outputs)
            if self.cum_samples.numel() != logits.shape[1]:
                self.cum_samples = torch.zeros(
                    logits.shape[1], dtype=torch.float64, device=logits.device
                )
            labels = batch["label"]
            self.cum_samples += torch.bincount(labels, minlength=logits.shape[1]).to(
                self.cum_samples
            )
        return super().forward(outputs, batch)

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        log_factor = torch.zeros_like(logits)
        if self.params.p > 0:
            cum = self.cum_samples.to(logits.dtype).clamp(min=1)
            ratio = cum[None, :] / cum[:, None]  # [i, j] = N_j / N_i
            mitigation = torch.where(ratio < 1, ratio.pow(self.params.p), torch.ones_like(ratio))
            log_factor = log_factor + mitigation[target].log()
        if self.params.q > 0:
            with torch.no_grad():
                probs = logits.detach().softmax(dim=1)
                own = probs.gather(1, target[:, None]).clamp(min=self.params.eps)
                ratio = probs / own
                compensation = torch.where(
                    ratio > 1, ratio.pow(self.params.q), torch.ones_like(ratio)
                )
            log_factor = log_factor + compensation.log()
        adjusted = logits + log_factor * (1 - onehot)
        return {"seesaw_ce": weighted_ce(adjusted, target, None, sample_weight)}
