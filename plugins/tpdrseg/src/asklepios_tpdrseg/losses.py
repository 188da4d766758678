"""Loss ``tpdrseg.bce_dice``: BCE (or sigmoid focal) + soft Dice on full-resolution logits.

RECONSTRUCTED (spec 2.6): for logits ``z`` and binary target ``y`` of one image,
``p = sigmoid(z)``, ``L = w_pix L_pix + w_dice (1 - (2 sum p y + s) / (sum p + sum y + s))`` with
``L_pix`` the mean binary cross-entropy (``bce_dice``) or torchvision's sigmoid focal loss
(``focal_dice``, for the extremely sparse MA class), Dice per image with smoothing ``s = 1``,
both averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

from asklepios_tpdrseg.params import BceDiceLossParams

__all__ = ["BceDiceLoss", "binary_target", "soft_dice_loss"]


def binary_target(logits: Tensor, mask: Tensor) -> Tensor:
    """Return ``mask`` as a float target shaped like ``logits`` ``(B, 1, H, W)``.

    Raises:
        ComponentError: the shapes cannot be matched.
    """
    target = mask.float()
    if target.dim() == logits.dim() - 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ComponentError(
            f"tpdrseg: logits {tuple(logits.shape)} and mask {tuple(mask.shape)} differ; the "
            "mask must be (B, 1, H, W) or (B, H, W) at the logits' resolution"
        )
    return target


def soft_dice_loss(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Return ``1 - (2 sum p y + s) / (sum p + sum y + s)`` per image, ``(B,)``."""
    dims = tuple(range(1, probs.dim()))
    overlap = (probs * target).sum(dims)
    total = probs.sum(dims) + target.sum(dims)
    return 1 - (2 * overlap + smooth) / (total + smooth)


class BceDiceLoss(Loss):
    """Sum pixel BCE (or focal) and soft Dice on the lesion mask logits (reconstructed).

    Reads ``outputs["logits"]`` ``(B, 1, H, W)`` and ``batch["mask"]``; terms ``bce`` (or
    ``focal``) and ``dice``.

    References:
        TP-DRSeg, Li et al., MICCAI 2024 (arXiv 2406.15764); the loss is not published.
    """

    def __init__(self, params: BceDiceLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        logits = outputs["logits"].float()
        target = binary_target(logits, batch["mask"])
        params = self.params
        if params.loss == "focal_dice":
            from torchvision.ops import sigmoid_focal_loss

            alpha = -1.0 if params.focal_alpha is None else params.focal_alpha
            name = "focal"
            pixel = sigmoid_focal_loss(
                logits, target, alpha=alpha, gamma=params.focal_gamma, reduction="mean"
            )
        else:
            name = "bce"
            pixel = F.binary_cross_entropy_with_logits(logits, target)
        dice = soft_dice_loss(torch.sigmoid(logits), target, params.smooth).mean()
        total = params.pixel_weight * pixel + params.dice_weight * dice
        return LossOutput(total, {name: pixel.detach(), "dice": dice.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return lesion-mask logits and sparse binary masks."""
        gen = torch.Generator().manual_seed(1)
        logits = torch.randn(batch_size, 1, 16, 16, generator=gen).requires_grad_(True)
        mask = (torch.rand(batch_size, 1, 16, 16, generator=gen) > 0.9).to(torch.uint8)
        return {"logits": logits}, {"mask": mask}
