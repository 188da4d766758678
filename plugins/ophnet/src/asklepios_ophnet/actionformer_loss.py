"""ActionFormer's training objective: point assignment, sigmoid focal loss and 1-D DIoU loss.

**Assignment** (per item, over the pyramid's points ``(t, lo, hi, stride)`` and the ground
truth ``[s, e]`` on the feature grid): a point is a candidate for an action when

- it lies inside the action's centre region ``|t - (s + e) / 2| < radius * stride`` clipped
  to the action (strictly inside; without centre sampling: strictly inside ``(s, e)``), and
- its larger distance ``max(t - s, e - t)`` lies in ``[lo, hi]`` (the level's regression
  range).

Among its candidates a point takes the shortest action; its class target is the one-hot of
every candidate within ``1e-3`` of that length (so a tie of two classes gives both), and its
regression target is ``(t - s, e - t) / stride`` of the shortest (the first on ties).

**Loss**: ``focal(logits of real points, targets, alpha 0.25, gamma 2, sum) / N`` plus
``loss_weight * sum over positive points of DIoU(offsets, targets) / N``, where ``N`` is an
exponential moving average (momentum 0.9) of the number of positive points per batch, moved on
steps that back-propagate (grad enabled; not in the engine's no-grad evaluation) and kept in a
buffer so checkpoints restore it. DIoU for distances ``(l, r)`` from one point:
``1 - IoU + ((r_p - l_p - r_g + l_g) / 2)^2 / (max(l_p, l_g) + max(r_p, r_g))^2``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from asklepios_ophnet.actionformer import action_classes, actionformer_example_batch
from asklepios_ophnet.params import ActionFormerLossParams

__all__ = ["ActionFormerLoss", "assign_points", "diou_loss_1d"]


def diou_loss_1d(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Return the per-row 1-D DIoU loss of ``[N, 2]`` distances ``(left, right) >= 0``."""
    pred, target = pred.float(), target.float()
    lp, rp = pred[:, 0], pred[:, 1]
    lg, rg = target[:, 0], target[:, 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - inter
    iou = inter / union.clamp_min(eps)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    centre = 0.5 * (rp - lp - rg + lg)
    return 1.0 - iou + (centre / enclosing.clamp_min(eps)) ** 2


@torch.no_grad()
def assign_points(
    points: Tensor,
    segments: Tensor,
    labels: Tensor,
    segment_mask: Tensor,
    num_classes: int,
    radius: float | None,
) -> tuple[Tensor, Tensor]:
    """Assign every point of a batch to at most one action (see the module docstring).

    Args:
        points: ``[P, 4]`` (step, range low, range high, stride).
        segments: ``[B, N, 2]`` ground truth on the feature grid; labels: ``[B, N]``;
            segment_mask: ``[B, N]`` real segments.
        num_classes: ``K``; radius: centre-sampling radius in strides, or ``None`` for none.

    Returns:
        ``(cls_targets [B, P, K] in {0, 1}, reg_targets [B, P, 2])`` (distances in strides;
        zero for a point without an action).
    """
    batch, count = segments.shape[:2]
    if count == 0:
        return (
            points.new_zeros(batch, len(points), num_classes),
            points.new_zeros(batch, len(points), 2),
        )
    t, low, high, stride = (points[:, i, None] for i in range(4))  # [P, 1] each
    start, end = segments[..., 0].float()[:, None], segments[..., 1].float()[:, None]  # [B,1,N]
    left, right = t - start, end - t  # [B, P, N]
    if radius is None:
        inside = torch.minimum(left, right) > 0
    else:
        centre = 0.5 * (start + end)
        near_left = t - torch.maximum(centre - radius * stride, start)
        near_right = torch.minimum(centre + radius * stride, end) - t
        inside = torch.minimum(near_left, near_right) > 0
    reach = torch.maximum(left, right)
    in_range = (reach >= low) & (reach <= high)
    lengths = (end - start).expand_as(left)
    ok = inside & in_range & segment_mask[:, None, :]
    lengths = lengths.masked_fill(~ok, float("inf"))
    shortest, which = lengths.min(dim=2)  # [B, P]
    ties = ((lengths <= shortest[..., None] + 1e-3) & ok).to(points.dtype)
    one_hot = F.one_hot(labels.clamp_min(0), num_classes).to(points.dtype)  # [B, N, K]
    cls_targets = (ties @ one_hot).clamp(0, 1)
    distances = torch.stack([left, right], dim=-1)  # [B, P, N, 2]
    index = which[..., None, None].expand(-1, -1, 1, 2)
    reg_targets = distances.gather(2, index).squeeze(2) / stride
    return cls_targets, reg_targets * torch.isfinite(shortest)[..., None]


class ActionFormerLoss(Loss):
    """Train ActionFormer's heads: centre-sampled points, focal and DIoU losses, EMA norm.

    Reads the model's ``logits``, ``offsets``, ``points``, ``point_mask`` and the batch's
    ``segments``, ``segment_labels``, ``segment_mask`` (feature grid). Terms ``cls`` and
    ``reg``; total ``cls + loss_weight * reg``. Defaults: OphNet's ActionFormer config
    (centre radius 1.5, initial normaliser 100), else ActionFormer's.
    """

    loss_normalizer: Tensor

    def __init__(self, params: ActionFormerLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.radius = params.center_sample_radius if params.center_sample == "radius" else None
        self.register_buffer("loss_normalizer", torch.tensor(float(params.init_loss_norm)))

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        for key in ("logits", "offsets", "points", "point_mask"):
            if key not in outputs:
                raise ComponentError(
                    f"ophnet.actionformer_loss: the model output has no {key!r} (keys "
                    f"{sorted(outputs)}); it trains ophnet.actionformer (model.backbone.type)"
                )
        logits = outputs["logits"].float()
        classes = logits.shape[-1]
        labels, seg_mask = batch["segment_labels"], batch["segment_mask"]
        real = labels[seg_mask]
        if len(real) and (int(real.min()) < 0 or int(real.max()) >= classes):
            raise ComponentError(
                f"ophnet.actionformer_loss: segment labels span {int(real.min())}.."
                f"{int(real.max())} but the model has {classes} action classes; set "
                "model.backbone.num_classes to the number of segment classes"
            )
        cls_targets, reg_targets = assign_points(
            outputs["points"][0].float(),
            batch["segments"],
            labels,
            seg_mask,
            classes,
            self.radius,
        )
        valid = outputs["point_mask"]
        positive = (cls_targets.sum(-1) > 0) & valid
        count = positive.sum().float()
        if torch.is_grad_enabled():
            momentum = self.params.loss_norm_momentum
            self.loss_normalizer.mul_(momentum).add_((1 - momentum) * count.clamp_min(1))
        norm = self.loss_normalizer
        cls = (
            sigmoid_focal_loss(
                logits[valid],
                cls_targets[valid],
                alpha=self.params.focal_alpha,
                gamma=self.params.focal_gamma,
                reduction="sum",
            )
            / norm
        )
        offsets = outputs["offsets"][positive]
        reg = diou_loss_1d(offsets, reg_targets[positive]).sum() / norm
        total = cls + self.params.loss_weight * reg
        return LossOutput(total, {"cls": cls.detach(), "reg": reg.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return head outputs that require grad, on three levels, and a sequence batch."""
        batch = actionformer_example_batch(ctx, batch_size)
        classes = action_classes(ctx) or 3
        steps = batch["mask"].shape[1]
        rows, masks = [], []
        for level, (low, high) in enumerate([(0.0, 4.0), (4.0, 8.0), (8.0, 10000.0)]):
            stride = 2**level
            t = torch.arange(0, steps, stride, dtype=torch.float32)
            rows.append(torch.stack([t, *torch.tensor([low, high, stride]).expand(len(t), 3).T], 1))
            masks.append(batch["mask"][:, ::stride])
        points = torch.cat(rows)
        gen = torch.Generator().manual_seed(1)
        logits = torch.randn(batch_size, len(points), classes, generator=gen).requires_grad_(True)
        offsets = torch.rand(batch_size, len(points), 2, generator=gen).requires_grad_(True)
        outputs = {
            "logits": logits,
            "offsets": offsets,
            "points": points.expand(batch_size, -1, -1),
            "point_mask": torch.cat(masks, dim=1),
        }
        return outputs, batch
