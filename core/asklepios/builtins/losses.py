"""Built-in losses: cross-entropy (class weights, label smoothing), binary cross-entropy, MSE.

The classification losses honour the mixing convention of batch augmentations: when a batch carries
``label_b`` and ``lam``, the loss is ``lam * L(label) + (1 - lam) * L(label_b)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

from asklepios.builtins.params import BCELossParams, CrossEntropyLossParams, MSELossParams

__all__ = ["BCELoss", "CrossEntropyLoss", "MSELoss", "class_weights"]


def class_weights(
    spec: Literal["balanced"] | list[float] | None, ctx: BuildContext, component: str
) -> Tensor | None:
    """Return per-class weights: explicit values, or ``n / (K * n_k)`` for ``"balanced"``."""
    if spec is None:
        return None
    if spec == "balanced":
        counts = ctx.data.class_counts
        if not counts:
            raise ComponentError(
                f"{component}: class_weights='balanced' needs the dataset's class counts, "
                "which this dataset does not state; give explicit weights instead"
            )
        counts_t = torch.as_tensor(counts, dtype=torch.float32).clamp_min(1.0)
        return counts_t.sum() / (len(counts_t) * counts_t)
    weights = torch.as_tensor(spec, dtype=torch.float32)
    if ctx.data.num_classes is not None and len(weights) != ctx.data.num_classes:
        raise ComponentError(
            f"{component}: class_weights has {len(weights)} values but the dataset has "
            f"{ctx.data.num_classes} classes"
        )
    return weights


def _mixed(per_target: Callable[[Tensor], Tensor], batch: Batch) -> Tensor:
    """Apply a per-sample loss to ``label`` and, when mixed, to ``label_b``; return the mean."""
    loss = per_target(batch["label"])
    if "label_b" in batch and "lam" in batch:
        lam = torch.as_tensor(batch["lam"], dtype=loss.dtype, device=loss.device)
        loss = lam * loss + (1 - lam) * per_target(batch["label_b"])
    return loss.mean()


class CrossEntropyLoss(Loss):
    """Cross-entropy on ``logits`` with optional class weights and label smoothing.

    With weights ``w`` the batch loss is ``sum_i w[y_i] * l_i / sum_i w[y_i]`` (PyTorch's
    weighted mean), so the weights change the balance, not the scale.
    """

    weight: Tensor  # buffer: the class weights, empty when unweighted

    def __init__(self, params: CrossEntropyLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.label_smoothing = params.label_smoothing
        weight = class_weights(params.class_weights, ctx, "core.cross_entropy")
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        weight = self.weight if self.weight.numel() else None

        def per_target(target: Tensor) -> Tensor:
            loss = F.cross_entropy(
                logits, target, reduction="none", label_smoothing=self.label_smoothing
            )
            if weight is None:
                return loss
            # Normalise per batch as PyTorch's reduction="mean" does with weights.
            sample_weight = weight.to(logits.dtype)[target]
            return loss * sample_weight / sample_weight.mean()

        total = _mixed(per_target, batch)
        return LossOutput(total, {"ce": total.detach()})


class BCELoss(Loss):
    """Binary cross-entropy with logits, for binary or multi-label targets.

    Integer class labels with ``K > 1`` logits become one-hot targets; a single logit column
    takes the label as the positive-class indicator.
    """

    pos_weight: Tensor  # buffer: the weights of positives, empty when unweighted

    def __init__(self, params: BCELossParams, ctx: BuildContext) -> None:
        super().__init__()
        pos = torch.as_tensor(params.pos_weight) if params.pos_weight is not None else None
        self.register_buffer("pos_weight", pos if pos is not None else torch.empty(0))

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        pos_weight = self.pos_weight if self.pos_weight.numel() else None

        def per_target(target: Tensor) -> Tensor:
            if target.dim() == 1 and logits.dim() == 2 and logits.shape[1] > 1:
                target = F.one_hot(target.long(), logits.shape[1])
            target = target.to(logits.dtype).reshape(logits.shape)
            loss = F.binary_cross_entropy_with_logits(
                logits, target, reduction="none", pos_weight=pos_weight
            )
            return loss.reshape(len(loss), -1).mean(dim=1)

        total = _mixed(per_target, batch)
        return LossOutput(total, {"bce": total.detach()})


class MSELoss(Loss):
    """Mean squared error between a model output and a batch target."""

    def __init__(self, params: MSELossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.output_key = params.output_key
        self.target_key = params.target_key

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        if self.output_key not in outputs or self.target_key not in batch:
            raise ComponentError(
                f"core.mse: needs output {self.output_key!r} and batch key {self.target_key!r}; "
                f"got outputs {sorted(outputs)} and batch {sorted(batch)}"
            )
        prediction = outputs[self.output_key]
        target = batch[self.target_key].to(prediction.dtype).reshape(prediction.shape)
        total = F.mse_loss(prediction, target)
        return LossOutput(total, {"mse": total.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return a one-column prediction that requires grad and a float target."""
        gen = torch.Generator().manual_seed(1)
        prediction = torch.randn(batch_size, 1, generator=gen).requires_grad_(True)
        target = torch.randn(batch_size, generator=gen)
        return {self.output_key: prediction}, {self.target_key: target}
