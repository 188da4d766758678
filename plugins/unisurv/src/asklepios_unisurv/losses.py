"""The Margin-Mean-Variance loss of UniSurv (``unisurv.mmv``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.components import Batch, Loss, LossOutput, example_batch
from torch import Tensor

from asklepios_unisurv._functional import as_logits, pdf_moments
from asklepios_unisurv.params import MMVLossParams

__all__ = ["MMVLoss"]


def _required(batch: Batch, key: str, fix: str) -> Tensor:
    if key not in batch:
        raise ComponentError(f"unisurv.mmv: the batch has no {key!r} field; {fix}")
    return batch[key]


class MMVLoss(Loss):
    """Compute the Margin-Mean-Variance loss (CE at the KM margin, mean, variance, ranking).

    With ``p_i = softmax(z_i)`` over bins ``k = 0..T_max-1``, ``mu_i = sum_k k p_ik`` and
    ``v_i = sum_k p_ik (k - mu_i)^2``, margin targets ``e_i`` and confidence weights ``w_i`` from
    ``unisurv.km_margin``::

        L_ce   = mean_i -log p_{i, e_i}
        L_mean = 1/(2B) sum_i w_i (mu_i - e_i)^2
        L_var  = mean_i v_i
        L_disc = mean_{i in P} max(0, (t_b(i) - t_i) - (mu_b(i) - mu_i)),
                 P = {i : event_i = 1 and t_i < t_b(i)}   (0 when P is empty)
        L      = alpha_s L_ce + alpha_m L_mean + alpha_v L_var + alpha_d L_disc

    ``terms`` holds the unweighted ``ce``, ``mean``, ``variance`` and (when ``alpha_d > 0`` and
    the batch has partners) ``discordance``. The partner ``b(i)`` comes from
    ``outputs["partner_logits"]`` and ``batch["partner_time"]``, which the ``unisurv.pairwise``
    trainer and the ``unisurv.sorted_pairs`` wrapper provide; validation and test batches carry
    no partners, so their loss has no discordance term.

    Raises:
        ComponentError: ``alpha_d > 0`` while the training samples carry no partners (the
            dataset facts lack ``extras["unisurv.sorted_pairs"]``).

    References:
        Zhang et al., "Adaptive Transformer Modelling of Density Function for Nonparametric
        Survival Analysis", Machine Learning 2025 (arXiv 2409.06209); UniSurv ``modules/loss.py``.
    """

    def __init__(self, params: MMVLossParams, ctx: BuildContext) -> None:
        if params.alpha_d > 0 and not ctx.data.extras.get("unisurv.sorted_pairs"):
            raise ComponentError(
                f"unisurv.mmv: alpha_d = {params.alpha_d} needs a partner for every training "
                "sample; add {type: unisurv.sorted_pairs} to data.wrappers and set trainer: "
                "{type: unisurv.pairwise}, or set loss.alpha_d: 0 (the original grid-search "
                "setting)"
            )
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        p = self.params
        logits = as_logits(outputs["logits"])
        num_bins = logits.shape[-1]
        fix = "add the unisurv.km_margin wrapper to data.wrappers"
        margin = _required(batch, "margin", fix).to(logits.device).long().reshape(-1)
        weight = _required(batch, "weight", fix).to(logits).reshape(-1)
        if margin.numel() and (int(margin.min()) < 0 or int(margin.max()) >= num_bins):
            raise ComponentError(
                f"unisurv.mmv: margin targets must lie in [0, {num_bins - 1}] (T_max = {num_bins} "
                f"logits), got [{int(margin.min())}, {int(margin.max())}]; raise the backbone's "
                "t_max or use coarser time bins in the dataset"
            )
        log_prob = torch.log_softmax(logits, dim=-1)
        _, mean, var = pdf_moments(logits)
        ce = -log_prob.gather(-1, margin.unsqueeze(-1)).squeeze(-1).mean()
        mean_term = (weight * (mean - margin.to(mean)) ** 2).mean() / 2.0
        var_term = var.mean()
        terms = {"ce": ce, "mean": mean_term, "variance": var_term}
        total = p.alpha_s * ce + p.alpha_m * mean_term + p.alpha_v * var_term
        if p.alpha_d > 0 and "partner_time" in batch:
            disc = self._discordance(outputs, batch, logits, mean)
            terms["discordance"] = disc
            total = total + p.alpha_d * disc
        return LossOutput(total=total, terms=terms)

    @staticmethod
    def _discordance(
        outputs: Mapping[str, Tensor], batch: Batch, logits: Tensor, mean: Tensor
    ) -> Tensor:
        if "partner_logits" not in outputs:
            raise ComponentError(
                "unisurv.mmv: the batch carries partners but the model outputs have no "
                "'partner_logits'; set trainer: {type: unisurv.pairwise}, or set loss.alpha_d: 0"
            )
        partner_mean = pdf_moments(as_logits(outputs["partner_logits"]))[1]
        time = _required(batch, "time", "the dataset must provide 'time'").to(mean).reshape(-1)
        event = _required(batch, "event", "the dataset must provide 'event'").to(mean.device)
        partner_time = batch["partner_time"].to(mean).reshape(-1)
        valid = (event.reshape(-1) == 1) & (time < partner_time)
        gap = torch.relu((partner_time - time) - (partner_mean - mean))
        count = valid.sum()
        return torch.where(valid, gap, torch.zeros_like(gap)).sum() / count.clamp_min(1)

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return ``(outputs, batch)`` with margins, weights and partners (for the kit)."""
        num_bins = int(ctx.data.extras.get("t_max", 24))
        batch = example_batch(ctx.replace(data=ctx.data.replace(task="survival")), batch_size)
        gen = torch.Generator().manual_seed(1)
        time = torch.randint(0, num_bins - 1, (batch_size,), generator=gen)
        batch["time"] = time.float()
        batch["event"] = torch.arange(batch_size) % 2
        batch["margin"] = time
        batch["weight"] = torch.where(batch["event"] == 1, 1.0, 0.5)
        batch["partner_time"] = torch.clamp(time + 3, max=num_bins - 1).float()
        logits = torch.randn(batch_size, num_bins, generator=gen).requires_grad_(True)
        partner = torch.randn(batch_size, num_bins, generator=gen).requires_grad_(True)
        return {"logits": logits, "partner_logits": partner}, batch
