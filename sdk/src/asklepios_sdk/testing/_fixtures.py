"""Tiny stand-ins the kit needs around a component: a model, a dataset, a loss, a step context."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from asklepios_sdk.components import Backbone, Batch, Dataset, Loss, LossOutput, example_batch
from asklepios_sdk.context import BuildContext, DataFacts

__all__ = ["CrossEntropy", "KitStepContext", "TinyBackbone", "TinyDataset"]


class TinyBackbone(Backbone):
    """Pool the image (or take the features), then two linear layers: logits and features."""

    feature_dim = 8

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        facts = ctx.data
        width = facts.num_features if facts.image_size is None and facts.num_features else None
        in_features = width or facts.in_channels or 3
        self.embed = nn.Linear(in_features, self.feature_dim)
        self.classifier = nn.Linear(self.feature_dim, facts.num_classes or 2)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        image = batch["image"]
        pooled = image.flatten(2).mean(-1) if image.dim() > 2 else image
        features = torch.relu(self.embed(pooled))
        return {"logits": self.classifier(features), "features": features}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        self.classifier = nn.Linear(self.feature_dim, num_classes)


class _Split(torch.utils.data.Dataset):
    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": self.labels[index]}


class TinyDataset(Dataset):
    """Random images with the class labels of ``facts.labels`` (the same for every split)."""

    def __init__(self, facts: DataFacts) -> None:
        self._facts = facts
        labels = facts.labels or tuple(i % (facts.num_classes or 2) for i in range(8))
        height, width = facts.image_size or (16, 16)
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(len(labels), facts.in_channels or 3, height, width, generator=gen)
        self._split = _Split(images, torch.tensor(labels))

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self._split

    def facts(self) -> DataFacts:
        return self._facts

    def labels(self, name: str) -> np.ndarray | None:
        return self._split.labels.numpy()


class CrossEntropy(Loss):
    """Cross-entropy of ``outputs["logits"]`` against ``batch["label"]``."""

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        ce = nn.functional.cross_entropy(outputs["logits"], batch["label"])
        return LossOutput(ce, {"ce": ce})


class KitStepContext:
    """A StepContext on CPU without mixed precision or accumulation."""

    def __init__(
        self, model: nn.Module, loss: Loss, optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizers = optimizers
        self.epoch = 0
        self.global_step = 0
        self.device = torch.device("cpu")

    def autocast(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def backward(self, loss: Tensor, optimizer: str = "main") -> None:
        loss.backward()

    def step(self, optimizer: str = "main") -> None:
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad()
        self.global_step += 1


def kit_batch(ctx: BuildContext, batch_size: int = 4) -> Batch:
    """Return the kit's default batch for ``ctx`` (what trainers are stepped on)."""
    return example_batch(ctx, batch_size)
