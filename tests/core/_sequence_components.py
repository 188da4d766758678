"""Components of the in-memory ``seq`` plugin: variable-length videos end to end.

Each video has its own length; every step carries a phase label and features that shift with it.
The split declares :class:`~asklepios_sdk.SequenceCollate`, so the engine's DataLoaders pad the
videos into a batch with a mask; the default collate could not stack them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from asklepios_sdk import (
    Backbone,
    Batch,
    BuildContext,
    DataFacts,
    Dataset,
    Loss,
    LossOutput,
    SequenceCollate,
    SequenceEvaluator,
)
from asklepios_sdk.sequences import IGNORE_INDEX, batch_index, example_sequence_batch
from torch import Tensor, nn

WIDTH, CLASSES = 6, 3


class VideoSplit(torch.utils.data.Dataset):
    """Videos of different lengths; the split declares its collate."""

    collate_fn = SequenceCollate()

    def __init__(self, count: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.items = []
        for index in range(count):
            length = int(torch.randint(3, 18, (), generator=gen))
            labels = torch.randint(0, CLASSES, (length,), generator=gen).sort().values
            labels[0] = IGNORE_INDEX if index % 4 == 3 else labels[0]  # an unlabelled step
            shift = nn.functional.one_hot(labels.clamp_min(0), WIDTH).float() * 2.0
            features = shift + 0.3 * torch.randn(length, WIDTH, generator=gen)
            self.items.append({"features": features, "frame_labels": labels, "index": index})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.items[index])


class ToyVideos(Dataset):
    """Make toy videos of 3 to 17 steps with per-step phase labels."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        sizes = {"train": params.train, "val": params.val, "test": params.test}
        self.splits = {
            name: VideoSplit(n, ctx.seed + i) for i, (name, n) in enumerate(sizes.items())
        }

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def facts(self) -> DataFacts:
        return DataFacts(
            task="phase_recognition",
            num_samples=len(self.splits["train"]),
            num_classes=CLASSES,
            num_features=WIDTH,
        )


class StepConv(Backbone):
    """Classify every step from its neighbours with one masked temporal convolution."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.conv = nn.Conv1d(WIDTH, CLASSES, kernel_size=3, padding=1)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        mask = batch["mask"].unsqueeze(1).float()
        x = batch["features"].transpose(1, 2) * mask
        logits = (self.conv(x) * mask).transpose(1, 2)
        return {"logits": logits, "features": logits}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        return example_sequence_batch(ctx, batch_size)


class StepCrossEntropy(Loss):
    """Cross-entropy over the labelled real steps of every video."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        labels = batch["frame_labels"].masked_fill(~batch["mask"], IGNORE_INDEX)
        ce = nn.functional.cross_entropy(
            outputs["logits"].flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
        )
        return LossOutput(ce, {"ce": ce.detach()})


class VideoAccuracy(SequenceEvaluator):
    """Mean over videos of each video's step accuracy, gathered by item index."""

    name: ClassVar[str] = "videos"
    output_keys: ClassVar[tuple[str, ...]] = ("video_accuracy", "videos", "steps")

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.add_item_state("hits", torch.int64)

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        valid = batch["mask"] & (batch["frame_labels"] != IGNORE_INDEX)
        hits = outputs["logits"].argmax(-1) == batch["frame_labels"]
        per_item = [hits[i][valid[i]].long() for i in range(len(valid))]
        self.append_items(batch_index(batch, self.name), hits=per_item)

    def compute(self) -> dict[str, Tensor]:
        table = self.items()
        accuracies = [h.double().mean() for h in table.values["hits"] if h.numel()]
        return {
            "video_accuracy": torch.stack(accuracies).mean(),
            "videos": torch.tensor(float(len(table))),
            "steps": torch.tensor(float(sum(h.numel() for h in table.values["hits"]))),
        }
