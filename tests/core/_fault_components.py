"""The components of the test plugin ``fault`` (``_fault_plugin``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from asklepios.builtins.losses import CrossEntropyLoss
from asklepios.builtins.params import CrossEntropyLossParams
from asklepios_sdk import Backbone, LossOutput
from torch import nn


class BatchNormMLP(Backbone):
    """Flatten, Linear, BatchNorm1d, ReLU, Linear: the smallest model with BatchNorm."""

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__()
        width = (ctx.data.in_channels or 1) * math.prod(ctx.data.image_size or (8, 8))
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(width, params.hidden), nn.BatchNorm1d(params.hidden), nn.ReLU()
        )
        self.feature_dim = params.hidden
        self.classifier = nn.Linear(params.hidden, ctx.data.num_classes or 2)

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        features = self.body(batch["image"])
        return {"logits": self.classifier(features), "features": features}


class NonFiniteLoss(CrossEntropyLoss):
    """Cross-entropy that turns into ``value`` on the chosen training batches."""

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__(CrossEntropyLossParams(), ctx)
        self.at_steps = set(params.at_steps)
        self.value = params.value
        self.calls = 0

    def forward(self, outputs: Any, batch: Any) -> LossOutput:
        result = super().forward(outputs, batch)
        reg = result.total.detach() * 0
        if torch.is_grad_enabled():  # a training batch (evaluation runs without gradients)
            self.calls += 1
            if self.calls - 1 in self.at_steps:
                bad = result.total * self.value
                return LossOutput(bad, {"ce": bad.detach(), "reg": reg})
        return LossOutput(result.total, {"ce": result.total.detach(), "reg": reg})
