"""Losses of PanDerm's protocols: soft-target / label-smoothing CE, pixel CE, CAEv2 alignment.

With mixup the repo trains on timm's soft targets ``lam * s(y_a) + (1 - lam) * s(y_b)``, where
``s`` is label smoothing (``1 - e + e/K`` on the class, ``e/K`` elsewhere), with
``SoftTargetCrossEntropy``; without mixup on ``LabelSmoothingCrossEntropy(0.1)``, which is the
same soft-target CE on ``s(y)``. Both read the asklepios mixing convention (``label``,
``label_b``, ``lam``), and CE is linear in the target, so the two are one formula (§6.4).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, Loss, LossOutput, example_batch
from torch import Tensor

from asklepios_panderm.params import (
    CAEv2AlignmentLossParams,
    LabelSmoothingCrossEntropyParams,
    PixelCrossEntropyParams,
    SoftTargetCrossEntropyParams,
)

__all__ = [
    "CAEv2AlignmentLoss",
    "LabelSmoothingCrossEntropy",
    "PixelCrossEntropy",
    "SoftTargetCrossEntropy",
    "smoothed_targets",
]


def smoothed_targets(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """Return timm's smoothed one-hot targets: ``1 - e + e/K`` on the class, ``e/K`` elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


class SoftTargetCrossEntropy(Loss):
    """Score logits by cross-entropy against smoothed (after mixup: mixed) soft targets.

    ``L = mean_i sum_k -t_ik log softmax(z_i)_k`` with ``t = lam s(label) + (1 - lam)
    s(label_b)`` when the batch is mixed, else ``s(label)``; ``s`` smooths by ``smoothing``.
    """

    def __init__(self, params: SoftTargetCrossEntropyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.smoothing = float(params.smoothing)

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        log_probs = F.log_softmax(logits.float(), dim=-1)
        classes = logits.shape[-1]
        targets = smoothed_targets(batch["label"], classes, self.smoothing)
        if "label_b" in batch and "lam" in batch:
            lam = torch.as_tensor(batch["lam"], dtype=targets.dtype, device=targets.device)
            lam = lam.view(-1, 1) if lam.dim() else lam
            second = smoothed_targets(batch["label_b"], classes, self.smoothing)
            targets = lam * targets + (1 - lam) * second
        loss = (-targets * log_probs).sum(dim=-1).mean()
        return LossOutput(loss, {"ce": loss.detach()})


class LabelSmoothingCrossEntropy(SoftTargetCrossEntropy):
    """Score logits by label-smoothing CE, (1 - e) NLL + e mean_k(-log p_k) (timm's, e = 0.1)."""

    def __init__(self, params: LabelSmoothingCrossEntropyParams, ctx: BuildContext) -> None:
        super().__init__(params, ctx)


class PixelCrossEntropy(Loss):
    """Score per-pixel logits [B, K, H, W] against the mask [B, H, W] by cross-entropy (§6.5)."""

    def __init__(self, params: PixelCrossEntropyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.ignore_index = int(params.ignore_index)

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits, mask = outputs["logits"], batch.get("mask")
        if mask is None or logits.dim() != 4:
            raise ComponentError(
                "panderm.pixel_ce: needs per-pixel logits [B, K, H, W] and a batch 'mask' "
                f"[B, H, W]; got logits {tuple(logits.shape)} and mask "
                f"{None if mask is None else tuple(mask.shape)}"
            )
        loss = F.cross_entropy(logits.float(), mask.long(), ignore_index=self.ignore_index)
        return LossOutput(loss, {"pixel_ce": loss.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return per-pixel logits and a mask."""
        facts = ctx.data.replace(task="segmentation", num_classes=2, image_size=(8, 8))
        batch = example_batch(ctx.replace(data=facts), batch_size)
        gen = torch.Generator().manual_seed(1)
        logits = torch.randn(batch_size, 2, 8, 8, generator=gen).requires_grad_(True)
        return {"logits": logits}, batch


class CAEv2AlignmentLoss(Loss):
    """Align predicted to teacher latents, w * mean(1 - cos) (CAEv2; lineage only, §2.3).

    Lineage of PanDerm's pretraining: PanDerm's own pretraining code is not public; this is the
    cosine objective of the CAEv2 code drop in PanDerm-2, over ``[CLS, visible, masked]`` tokens
    of L2-normalised predictions and frozen CLIP-teacher targets. Its weight is UNVERIFIED.
    """

    def __init__(self, params: CAEv2AlignmentLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.weight = float(params.weight)
        self.pred_key, self.target_key = params.pred_key, params.target_key

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        if self.pred_key not in outputs:
            raise ComponentError(
                f"panderm.caev2_alignment: the model output has no {self.pred_key!r} "
                f"(keys: {sorted(outputs)}); set pred_key"
            )
        target = outputs.get(self.target_key, batch.get(self.target_key))
        if target is None:
            raise ComponentError(
                f"panderm.caev2_alignment: neither the output nor the batch has "
                f"{self.target_key!r}; set target_key"
            )
        pred = outputs[self.pred_key]
        cosine = F.cosine_similarity(pred.float(), target.detach().float(), dim=-1)
        loss = self.weight * (1.0 - cosine).mean()
        return LossOutput(loss, {"alignment": loss.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return predicted and teacher latents ``[B, tokens, d]``."""
        gen = torch.Generator().manual_seed(1)
        pred = torch.randn(batch_size, 5, 8, generator=gen).requires_grad_(True)
        target = torch.randn(batch_size, 5, 8, generator=gen)
        return {self.pred_key: pred, self.target_key: target}, example_batch(ctx, batch_size)
