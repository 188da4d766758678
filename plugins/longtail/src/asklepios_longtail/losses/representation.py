"""Metric-learning and representation losses: Center (+triplet), Range, ConMix."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_longtail import _functional as fn
from asklepios_longtail.losses._base import MixableLoss, sample_mean, weighted_ce
from asklepios_longtail.params import CenterLossParams, ConMixLossParams, RangeLossParams

__all__ = [
    "CenterLoss",
    "ConMixLoss",
    "RangeLoss",
    "pairwise_distance",
]


def _features(outputs: Mapping[str, Tensor], key: str, component: str) -> Tensor:
    if key not in outputs:
        raise ComponentError(
            f"{component} needs outputs[{key!r}] (pre-logit features), but the model returned "
            f"{sorted(outputs)}; use a backbone that reports its features"
        )
    return outputs[key]


def pairwise_distance(x: Tensor) -> Tensor:
    """Return the Euclidean distance matrix sqrt(clamp(‖x_i − x_j‖², 1e−12)) (diagonal ≈ 1e−6)."""
    sq = (x * x).sum(dim=1, keepdim=True)
    dist = sq + sq.T - 2 * x @ x.T
    return dist.clamp(min=1e-12).sqrt()


class CenterLoss(MixableLoss):
    """Compute CE + w(e)·center term on pre-logit features, with MONICA's weight schedule.

    Center term: origin mean_i ‖f_i − c_{y_i}‖²; cos mean_i (1 − cos(f_i, c_{y_i})); triplet
    mean_i max(0, ‖f_i − c_{y_i}‖ − ‖f_i − c_{ŷ_i}‖ + margin) with ŷ_i the most probable
    wrong class.
    w(e) = 0, 0.001, 0.005 switching at int(0.6E), int(0.8E). Centers ~ N(0, 1), trainable
    parameters of the loss (the engine must hand ``loss.parameters()`` to an optimiser).

    References: Wen et al., ECCV 2016. MONICA ``losses/CenterLoss.py``.
    """

    def __init__(self, params: CenterLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        num_classes = ctx.data.num_classes or (
            len(ctx.data.class_counts) if ctx.data.class_counts else None
        )
        if not num_classes:
            raise ComponentError(f"{type(self).__name__} needs ctx.data.num_classes")
        centers = torch.randn(num_classes, params.feat_dim)
        if params.centers_not_optimised:
            self.register_buffer("centers", centers)
        else:
            self.centers = nn.Parameter(centers)
        epochs = params.epochs or ctx.epochs
        self.cut_epochs = tuple(fn.drw_start(epochs, cut) for cut in params.cuts)

    def weight(self) -> float:
        """Return the center-term weight w(e) at the current epoch."""
        first, second = self.cut_epochs
        low, mid, high = self.params.term_weights
        return low if self.epoch < first else mid if self.epoch < second else high

    def center_term(
        self, features: Tensor, logits: Tensor, target: Tensor, sample_weight: Tensor | None
    ) -> Tensor:
        """Return the unweighted center term for one target."""
        if features.shape[1] != self.centers.shape[1]:
            raise ComponentError(
                f"{type(self).__name__}: features have width {features.shape[1]} but feat_dim is "
                f"{self.centers.shape[1]}; set loss.feat_dim to the backbone's feature width"
            )
        own = self.centers[target]
        if self.params.variant == "origin":
            values = ((features - own) ** 2).sum(dim=1).clamp(1e-12, 1e12)
        elif self.params.variant == "cos":
            values = 1 - F.cosine_similarity(features, own, dim=1)
        else:
            probs = logits.detach().softmax(dim=1)
            probs = probs.masked_fill(F.one_hot(target, probs.shape[1]).bool(), -1.0)
            negative = self.centers[probs.argmax(dim=1)]
            values = F.triplet_margin_loss(
                features, own, negative, margin=self.params.margin, reduction="none"
            )
        return sample_mean(values, sample_weight)

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        logits = self.logits(outputs)
        features = _features(outputs, "features", type(self).__name__)
        ce = weighted_ce(logits, target, None, sample_weight)
        center = self.weight() * self.center_term(features, logits, target, sample_weight)
        return {"ce": ce, "center": center}

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return logits and features of the configured width (for the conformance kit)."""
        outputs, batch = super().example_inputs(ctx, batch_size)
        gen = torch.Generator().manual_seed(3)
        outputs["features"] = torch.randn(
            batch_size, self.params.feat_dim, generator=gen
        ).requires_grad_(True)
        return outputs, batch


class RangeLoss(MixableLoss):
    """Compute CE + α·Σ_c intra_c + β·max(0, margin − min_{c≠c'} ‖μ_c − μ_c'‖) (Range loss).

    intra_c = k / Σ 1/d over the k largest distinct intra-class distances of the batch (sorted
    full distance matrix, taking every second entry from the end, diagonal ≈ 1e−6 included as in
    the reference code); μ_c = class means of the batch; with one class the inter term is 0.

    References: Zhang et al., ICCV 2017. MONICA ``losses/RangeLoss.py``.
    """

    per_sample_mixing = False

    def __init__(self, params: RangeLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        self.input_key = params.input or ("logits" if params.range_loss_alone else "features")

    def intra(self, x: Tensor, target: Tensor) -> Tensor:
        """Return Σ_c intra_c over the classes present in the batch."""
        classes, inverse = torch.unique(target, return_inverse=True)
        member = F.one_hot(inverse, classes.numel()).T.bool()  # (K, B)
        same = member[:, :, None] & member[:, None, :]  # (K, B, B)
        dist = pairwise_distance(x)
        length = same.flatten(1).sum(dim=1)  # L_c = n_c²
        k = self.params.k
        top = min(2 * k, dist.numel())
        masked = torch.where(same, dist[None], dist.new_full((), -1.0)).flatten(1)
        descending = masked.topk(top, dim=1).values  # (K, top)
        start = (length - 2 * k).clamp(min=0)  # first ascending index taken
        t = torch.arange(k, device=x.device)
        ascending_idx = start[:, None] + 2 * t[None, :]
        valid = ascending_idx < length[:, None]
        position = (length[:, None] - 1 - ascending_idx).clamp(min=0, max=top - 1)
        picked = descending.gather(1, position)
        inv_sum = torch.where(valid, 1.0 / picked.clamp(min=1e-12), torch.zeros_like(picked))
        return (k / inv_sum.sum(dim=1)).sum()

    def inter(self, x: Tensor, target: Tensor) -> Tensor:
        """Return max(0, margin − smallest distance between two class means of the batch)."""
        classes, inverse = torch.unique(target, return_inverse=True)
        if classes.numel() < 2:
            return x.new_zeros(())
        member = F.one_hot(inverse, classes.numel()).to(x.dtype)
        means = (member.T @ x) / member.sum(dim=0)[:, None]
        dist = pairwise_distance(means)
        off = ~torch.eye(classes.numel(), dtype=torch.bool, device=x.device)
        return F.relu(self.params.margin - dist[off].min())

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        x = _features(outputs, self.input_key, type(self).__name__)
        parts = {
            "range_intra": self.params.alpha * self.intra(x, target),
            "range_inter": self.params.beta * self.inter(x, target),
        }
        if not self.params.range_loss_alone:
            parts["ce"] = weighted_ce(self.logits(outputs), target)
        return parts

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return logits and 8-wide features (for the conformance kit)."""
        outputs, batch = super().example_inputs(ctx, batch_size)
        gen = torch.Generator().manual_seed(3)
        outputs["features"] = torch.randn(batch_size, 8, generator=gen).requires_grad_(True)
        return outputs, batch


class ConMixLoss(MixableLoss):
    """Compute ConMix's NT-Xent over per-class mean features of two augmented views.

    h^v_k = mean of view-v features of class k (K classes in the batch); the 2K L2-normalised
    vectors form an NT-Xent problem where each anchor's positive is its class in the other view.
    Only this term is optimised (the head gets no gradient; add a cRT stage to classify).
    Evaluation passes (no autograd, one view) report 0; training without a second view raises.

    References: MONICA ``losses/ConMixLoss.py`` (supervised variant of contrastive mixup).
    """

    per_sample_mixing = False

    def __init__(self, params: ConMixLossParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:
        first = _features(outputs, "features", type(self).__name__)
        if self.params.second_view_key not in outputs and not torch.is_grad_enabled():
            # evaluation passes (run without autograd) see one view: there is nothing to contrast
            return {"conmix": first.new_zeros(())}
        second = _features(outputs, self.params.second_view_key, type(self).__name__)
        classes, inverse = torch.unique(target, return_inverse=True)
        num = classes.numel()
        member = F.one_hot(inverse, num).to(first.dtype)
        sizes = member.sum(dim=0)[:, None]
        means = torch.cat([member.T @ first / sizes, member.T @ second / sizes])
        z = F.normalize(means, dim=1)
        sim = z @ z.T / self.params.temperature
        sim = sim.masked_fill(torch.eye(2 * num, dtype=torch.bool, device=z.device), float("-inf"))
        partner = torch.cat([torch.arange(num, 2 * num), torch.arange(num)]).to(z.device)
        return {"conmix": F.cross_entropy(sim, partner)}

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return features of two views (for the conformance kit)."""
        outputs, batch = super().example_inputs(ctx, batch_size)
        gen = torch.Generator().manual_seed(3)
        outputs["features"] = torch.randn(batch_size, 8, generator=gen).requires_grad_(True)
        outputs[self.params.second_view_key] = torch.randn(
            batch_size, 8, generator=gen
        ).requires_grad_(True)
        return outputs, batch
