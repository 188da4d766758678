"""Shared machinery of the longtail losses: mixing targets, weighted CE, class buffers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

__all__ = ["MixableLoss", "class_buffer", "weighted_ce"]


def class_buffer(values: np.ndarray) -> Tensor:
    """Return a float32 tensor of a class vector, to register as a buffer."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)


def weighted_ce(
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None = None,
    sample_weight: Tensor | None = None,
) -> Tensor:
    """Return CE in PyTorch's weighted convention, Σ_i s_i w_{y_i} CE_i / Σ_i w_{y_i}.

    ``sample_weight`` s (a per-sample mixing weight) scales each sample's numerator only, so that
    ``weighted_ce(.., s=λ) + weighted_ce(.., s=1-λ)`` mixes two targets exactly as
    λ·L(a) + (1−λ)·L(b) does for a constant λ.
    """
    per_sample = F.cross_entropy(logits, target, reduction="none")
    if class_weight is None:
        if sample_weight is None:
            return per_sample.mean()
        return (sample_weight * per_sample).mean()
    w = class_weight.to(logits.dtype)[target]
    numerator = w * per_sample if sample_weight is None else sample_weight * w * per_sample
    return numerator.sum() / w.sum()


def sample_mean(values: Tensor, sample_weight: Tensor | None) -> Tensor:
    """Return the batch mean of per-sample values, each scaled by its mixing weight if given."""
    return values.mean() if sample_weight is None else (sample_weight * values).mean()


class MixableLoss(Loss):
    """Base of the longtail losses: one target, or two mixed targets (``label_b``, ``lam``).

    Subclasses implement :meth:`terms`, returning named terms that sum to the loss for one target.
    With ``label_b`` and ``lam`` in the batch the loss is λ·L(label) + (1 − λ)·L(label_b), term by
    term. A per-sample ``lam`` (ReMix) is passed down as a per-sample weight to losses that are
    sums over samples (``per_sample_mixing = True``); the others raise a clear error. A model
    that appends samples to its outputs (RSG's feature transfer) gives every row's label as
    ``outputs["label"]``, which then replaces ``batch["label"]``.
    """

    per_sample_mixing: bool = True

    def __init__(self, ctx: BuildContext | None = None) -> None:
        super().__init__()
        self.ctx = ctx or BuildContext()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Receive the 0-based epoch about to start."""
        self.epoch = int(epoch)

    def terms(
        self, outputs: Mapping[str, Tensor], target: Tensor, sample_weight: Tensor | None
    ) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise ComponentError(f"{type(self).__name__} does not implement terms()")

    def logits(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """Return ``outputs["logits"]``, with a clear error when the model did not produce it."""
        if "logits" not in outputs:
            raise ComponentError(
                f"{type(self).__name__} needs outputs['logits'], but the model returned "
                f"{sorted(outputs)}; check the backbone and adapters of the config"
            )
        return outputs["logits"]

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        target = batch["label"]
        if "label" in outputs:  # a model that appends samples (RSG's transfer) labels every row
            if "label_b" in batch:
                raise ComponentError(
                    f"{type(self).__name__}: the model appended samples to the batch (outputs "
                    "carry 'label'), which cannot be mixed; drop the mixing batch transform"
                )
            target = outputs["label"]
        if "label_b" not in batch or batch.get("lam") is None:
            parts = self.terms(outputs, target, None)
        else:
            lam = torch.as_tensor(batch["lam"], dtype=torch.float32, device=target.device)
            if lam.numel() == 1:
                first = self.terms(outputs, target, None)
                second = self.terms(outputs, batch["label_b"], None)
                lam = lam.reshape(())
                parts = {k: lam * first[k] + (1 - lam) * second[k] for k in first}
            else:
                if not self.per_sample_mixing:
                    raise ComponentError(
                        f"{type(self).__name__} is not a sum over samples, so it cannot take a "
                        "per-sample mixing weight 'lam' (from longtail.remix); use "
                        "longtail.mixup or longtail.cutmix with this loss"
                    )
                lam = lam.reshape(-1)
                first = self.terms(outputs, target, lam)
                second = self.terms(outputs, batch["label_b"], 1 - lam)
                parts = {k: first[k] + second[k] for k in first}
        total = sum(parts.values())
        assert isinstance(total, Tensor)
        return LossOutput(total=total, terms=parts)
