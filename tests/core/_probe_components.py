"""The components of the test plugin ``probe`` (``_probe_plugin``), each noting what it is told."""

from __future__ import annotations

from typing import Any

import torch
from _probe_plugin import _note
from asklepios.builtins.losses import CrossEntropyLoss
from asklepios_sdk import Adapter


class EpochLoss(CrossEntropyLoss):
    """Cross-entropy that records the epochs it is told about."""

    def set_epoch(self, epoch: int) -> None:
        _note("loss.set_epoch", epoch)


class PlainSampler(torch.utils.data.Sampler[int]):
    """A sampler that knows nothing about ranks (the engine must wrap it)."""

    def __init__(self, params: Any, ctx: Any) -> None:
        self.n = ctx.data.num_samples
        self.generator = torch.Generator()

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def set_epoch(self, epoch: int) -> None:
        _note("sampler.set_epoch", epoch)

    def on_evaluation(self, metrics: Any) -> None:
        _note("sampler.on_evaluation", dict(metrics))


class AuxAdapter(Adapter):
    """Pass outputs through and add a constant auxiliary loss term."""

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__()

    def set_epoch(self, epoch: int) -> None:
        _note("adapter.set_epoch", epoch)

    def forward(self, batch: Any) -> Any:
        out = dict(self.model(batch))
        out["aux_losses"] = {"probe": out["logits"].pow(2).mean() * 0.0 + 0.25}
        return out
