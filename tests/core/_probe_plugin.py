"""An in-memory test plugin ``probe``: records what the engine calls on components and hooks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from asklepios_sdk import EmptyParams, hookimpl

CALLS: dict[str, list[Any]] = {}


def _note(key: str, value: Any) -> None:
    CALLS.setdefault(key, []).append(value)


@hookimpl
def register_losses(register: Any) -> None:
    from asklepios.builtins.params import CrossEntropyLossParams

    register("epoch_ce", "_probe_components:EpochLoss", CrossEntropyLossParams)


@hookimpl
def register_samplers(register: Any) -> None:
    register("plain", "_probe_components:PlainSampler", EmptyParams)


@hookimpl
def register_adapters(register: Any) -> None:
    register("aux", "_probe_components:AuxAdapter", EmptyParams)


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
