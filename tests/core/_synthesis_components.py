"""Components of the in-memory ``synth`` plugin: a generation stage and a stage training on it.

``synth.requests`` serves ``count`` requests (a target class each) and nothing else;
``synth.painter`` paints one image per request from its class and its seed (random noise from a
generator seeded by the engine's per-item seed), logs every generate call (so tests count
them) and can SIGKILL its own process inside a call; ``synth.generated_set`` reads a generated
folder back through the SDK, for a classifier stage to train on.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from asklepios_sdk import (
    Backbone,
    BuildContext,
    ComponentError,
    ConfigConflictError,
    DataFacts,
    Dataset,
    Evaluator,
)
from asklepios_sdk.synthesis import (
    GENERATION_MODELS_EXTRA,
    DatasetGenerator,
    GeneratedSplit,
    generated_dir,
)
from torch import Tensor, nn


class RequestSplit(torch.utils.data.Dataset):
    """``count`` requests: ``label`` = index mod ``classes``."""

    def __init__(self, count: int, classes: int) -> None:
        self.count, self.classes = count, classes

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"label": index % self.classes, "index": index}


class Requests(Dataset):
    """Serve the generation requests as the training split."""

    split_names = ("train",)

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        self.requests = RequestSplit(params.count, params.classes)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.requests

    def facts(self) -> DataFacts:
        return DataFacts(task="generation", num_samples=len(self.requests))


class Painter(Backbone, DatasetGenerator):
    """Paint a class-coded noisy image per request; log each generate call."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.size, self.log, self.kill_after = params.size, params.log, params.kill_after_calls
        self.brightness = nn.Parameter(torch.tensor(60.0), requires_grad=False)
        self.calls = 0

    def generate_items(self, batch: Mapping[str, Any], seeds: Sequence[int]) -> list[dict]:
        self.calls += 1
        if self.kill_after and self.calls > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # a kill in the middle of a generate call
        items = []
        for label, seed in zip(batch["label"].tolist(), seeds, strict=True):
            gen = torch.Generator().manual_seed(seed)
            noise = torch.rand(3, self.size, self.size, generator=gen) * 40
            image = (noise + self.brightness * label).clamp(0, 255).to(torch.uint8)
            items.append({"image": image, "label": int(label), "caption": f"class {label}"})
        if self.log:
            with open(self.log, "a") as handle:
                line = {"call": f"{os.getpid()}-{self.calls}", "index": batch["index"].tolist()}
                handle.write(json.dumps(line) + "\n")
        return items

    def generation_metadata(self) -> dict[str, Any]:
        return {"painter": {"brightness": float(self.brightness)}}


class Plain(Backbone):
    """A backbone that is no generator (for the error test)."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"logits": self.linear(batch["label"].float()[:, None])}


class Judge(Evaluator):
    """Refuse a painter brighter than ``max_brightness``; needs the data's classes."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        model = dict(ctx.extras.get(GENERATION_MODELS_EXTRA) or {}).get(params.stage)
        if model is not None and model["backbone"].get("size", 8) > params.max_brightness:
            raise ConfigConflictError(f"judge: the painter of {params.stage} is too bright")
        if not ctx.data.num_classes:
            raise ComponentError("judge: needs the data's classes")
        self.add_state("seen", default=torch.zeros(()), dist_reduce_fx="sum")

    def update(self, outputs: Any, batch: Any) -> None:
        self.seen += len(batch["label"])

    def compute(self) -> dict[str, Any]:
        return {"seen": float(self.seen)}


class GeneratedSet(Dataset):
    """Train on a generated dataset: every item in ``train``, the even ones again in ``val``."""

    split_names = ("train", "val")

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        folder = generated_dir(ctx, stage=params.stage, path=params.path, where="synth")
        self.train = GeneratedSplit(folder)
        self.val = GeneratedSplit(folder, self.train.records[::2])
        self.labels_ = np.asarray([r["label"] for r in self.train.records])

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.train if name == "train" else self.val

    def labels(self, name: str) -> np.ndarray:
        return self.labels_ if name == "train" else self.labels_[::2]

    def facts(self) -> DataFacts:
        counts = np.bincount(self.labels_)
        return DataFacts(
            num_samples=len(self.labels_),
            num_classes=len(counts),
            class_counts=tuple(int(c) for c in counts),
            labels=tuple(int(v) for v in self.labels_),
        )
