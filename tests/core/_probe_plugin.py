"""An in-memory test plugin ``probe``: records what the engine calls on components and hooks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from asklepios_sdk import hookimpl

CALLS: dict[str, list[Any]] = {}


def _note(key: str, value: Any) -> None:
    CALLS.setdefault(key, []).append(value)


@hookimpl
def register_losses(register: Any) -> None:
    from asklepios.builtins.losses import CrossEntropyLoss, CrossEntropyLossParams

    class EpochLoss(CrossEntropyLoss):
        """Cross-entropy that records the epochs it is told about."""

        def set_epoch(self, epoch: int) -> None:
            _note("loss.set_epoch", epoch)

    register("epoch_ce", EpochLoss, CrossEntropyLossParams)


@hookimpl
def register_samplers(register: Any) -> None:
    import torch

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

    register("plain", PlainSampler)


@hookimpl
def register_adapters(register: Any) -> None:
    from asklepios_sdk import Adapter

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

    register("aux", AuxAdapter)


@hookimpl
def step_end(run: Any, step: int, losses: Any) -> None:
    _note("step_end", step)
    delay = float(os.environ.get("PROBE_STEP_DELAY", "0"))
    if delay:
        time.sleep(delay)
    marker = os.environ.get("PROBE_MARKER")
    if marker and run.epoch == int(os.environ.get("PROBE_MARKER_EPOCH", "1")):
        Path(marker).touch()


@hookimpl
def epoch_start(run: Any, epoch: int) -> None:
    _note("epoch_start", epoch)


@hookimpl
def evaluation_end(run: Any, split: str, metrics: Any) -> None:
    _note("evaluation_end", split)
