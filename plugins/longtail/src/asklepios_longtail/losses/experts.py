"""Multi-expert losses: SADE's diverse-expert loss and RIDE's loss."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError
from torch import Tensor

from asklepios_longtail import _functional as fn
from asklepios_longtail.losses._base import MixableLoss, class_buffer, weighted_ce
from asklepios_longtail.params import RIDELossParams, SADELossParams

__all__ = ["RIDELoss", "SADELoss", "expert_logits"]


def expert_logits(outputs: Mapping[str, Tensor], component: str) -> Tensor:
    """Return ``outputs["expert_logits"]`` as a (K, B, C) tensor, or raise a clear error."""
    experts = outputs.get("expert_logits")
    if experts is None:
        raise ComponentError(
            f"{component} needs outputs['expert_logits'] (K experts × batch × classes) from a "
            "multi-expert backbone, but the model returned "
            f"{sorted(outputs)}; use a backbone that emits per-expert logits"
        )
    if isinstance(experts, (list, tuple)):
        experts = torch.stack(list(experts))
    if experts.ndim != 3:
        raise ComponentError(
            f"{component}: outputs['expert_logits'] must have shape (K, B, C), got "
            f"{tuple(experts.shape)}"
        )
    return experts


class _ExpertLoss(MixableLoss):
    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return three experts' logits and their mean (the contract of multi-expert losses)."""
        outputs, batch = super().example_inputs(ctx, batch_size)
        num_classes = outputs["logits"].shape[1]
        gen = torch.Generator().manual_seed(4)
        experts = torch.randn(3, batch_size, num_classes, generator=gen).requires_grad_(True)
        return {"logits": experts.mean(dim=0), "expert_logits": experts}, batch


class SADELoss(_ExpertLoss):
    """Compute SADE's diverse-expert loss over three experts' logits.

    CE(e₁, y) + CE(e₂ + log(π + 1e−9), y) + CE(e₃ + log(π + 1e−9) − τ log(π̃ + 1e−9), y), π̃ the
    inverted prior (prior values in reversed rank order). ``outputs["expert_logits"]`` holds e₁..e₃.

    References: Zhang et al., NeurIPS 2022 (SADE). MONICA ``losses/SADELoss.py``.
    """

    log_prior: Tensor
    inverse_shift: Tensor

    def __init__(self, params: SADELossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        log_prior = np.log(fn.prior(counts) + 1e-9)
        log_inverted = np.log(fn.inverted_prior(counts) + 1e-9)
        self.register_buffer("log_prior", class_buffer(log_prior))
        self.register_buffer("inverse_shift", class_buffer(log_prior - params.tau * log_inverted))

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        experts = expert_logits(outputs, type(self).__name__)
        if experts.shape[0] != 3:
            raise ComponentError(
                f"{type(self).__name__} expects exactly 3 experts (long-tailed, balanced, "
                f"inverse), got {experts.shape[0]}"
            )
        dtype = experts.dtype
        return {
            "expert_lt": weighted_ce(experts[0], target, None, sample_weight),
            "expert_balanced": weighted_ce(
                experts[1] + self.log_prior.to(dtype), target, None, sample_weight
            ),
            "expert_inverse": weighted_ce(
                experts[2] + self.inverse_shift.to(dtype), target, None, sample_weight
            ),
        }


class RIDELoss(_ExpertLoss):
    """Compute RIDE's loss: per-expert LDAM(-DRW) plus a KL diversity term to the ensemble.

    For every expert k: base_factor·CE_w(e_k − s·m_y on the target, y) + f_div·T̄²·
    KL(softmax(z/T) ‖ softmax(e_k/T)) averaged over the batch, where z = ``outputs["logits"]``
    (the ensemble, detached), T = base temperature (times per-class temperatures
    w_c = (C·π_c·r + 1 − r)/max once re-weighting is on) and T̄ its mean. Once re-weighting is on
    the LDAM losses use CB(β) weights. Taken from MONICA ``losses/SADELoss.py:RIDELoss``, which
    follows the RIDE authors' code (spec §3.9: reconstructed from source and paper).

    References: Wang et al., ICLR 2021 (RIDE).
    """

    per_sample_mixing = False
    margins: Tensor
    cb_weight: Tensor
    class_temperature: Tensor

    def __init__(self, params: RIDELossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        self.register_buffer("margins", class_buffer(fn.ldam_margins(counts, params.max_m)))
        self.register_buffer("cb_weight", class_buffer(fn.cb_weights(counts, params.beta)))
        pi = fn.prior(counts)
        temps = counts.size * pi * params.reweight_factor + 1 - params.reweight_factor
        temps = temps / temps.max()
        if np.any(temps <= 0):
            raise ComponentError(
                f"{type(self).__name__}: reweight_factor={params.reweight_factor} makes a class "
                "temperature non-positive; use a smaller reweight_factor"
            )
        self.register_buffer("class_temperature", class_buffer(temps))
        self.reweight_start = fn.drw_start(
            params.epochs or ctx.epochs, params.reweight_fraction, params.reweight_epoch
        )

    def reweighting(self) -> bool:
        """Return whether DRW weights and class temperatures are on at the current epoch."""
        return self.params.reweight and self.epoch >= self.reweight_start

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        experts = expert_logits(outputs, type(self).__name__)
        ensemble = self.logits(outputs)
        num_classes = ensemble.shape[1]
        dtype = ensemble.dtype
        onehot = F.one_hot(target, num_classes).to(dtype)
        shift = self.params.s * onehot * self.margins.to(dtype)[target][:, None]
        on = self.reweighting()
        weight = self.cb_weight if on else None
        temperature: Tensor | float
        if on:
            temperature = self.params.base_diversity_temperature * self.class_temperature.to(
                dtype
            ).view(1, -1)
            t_mean = float(temperature.mean())
        else:
            temperature = self.params.base_diversity_temperature
            t_mean = float(temperature)
        target_dist = (ensemble.detach() / temperature).softmax(dim=1)
        base = ensemble.new_zeros(())
        diversity = ensemble.new_zeros(())
        for k in range(experts.shape[0]):  # a handful of experts, not samples or classes
            item = experts[k]
            base = base + self.params.base_loss_factor * weighted_ce(item - shift, target, weight)
            log_dist = (item / temperature).log_softmax(dim=1)
            kl = F.kl_div(log_dist, target_dist, reduction="batchmean")
            diversity = diversity + self.params.additional_diversity_factor * t_mean**2 * kl
        return {"ride_ldam": base, "ride_diversity": diversity}
