"""Atomic state-dict checkpoints: written to a temp file and renamed, read with weights_only.

A corrupt or truncated file gives :class:`CheckpointError` naming it; :func:`load_latest` then
falls back to the previous good checkpoint with a warning. :func:`stage_state` is what an epoch
checkpoint of a stage holds: enough to continue exactly, and to write the stage's summary when no
epoch is left (the last validation result included).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from asklepios_sdk import AsklepiosError, AsklepiosWarning
from asklepios_sdk.io import write_atomic

from asklepios.engine.seeding import get_rng_state, set_rng_state

if TYPE_CHECKING:
    from asklepios.engine.loop import StageRunner

__all__ = [
    "CheckpointError",
    "epoch_checkpoints",
    "load_checkpoint",
    "load_latest",
    "prune_epoch_checkpoints",
    "restore_stage_state",
    "save_checkpoint",
    "stage_state",
]

_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(AsklepiosError):
    """A checkpoint file is missing, truncated or not a state dict."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    return write_atomic(path, write=lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; raise if it is bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "delete it to resume from an earlier one"
        ) from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not an asklepios state dict (no 'model' key)")
    return state


def epoch_checkpoints(folder: str | Path) -> list[Path]:
    """Return the ``epoch-N.pt`` files of ``folder``, newest epoch first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune_epoch_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest epoch checkpoints of ``folder``."""
    for path in epoch_checkpoints(folder)[keep:]:
        path.unlink(missing_ok=True)


def load_latest(
    folder: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest good epoch checkpoint of ``folder``, warning about each bad one skipped."""
    for path in epoch_checkpoints(folder):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as err:
            warnings.warn(
                f"{err}; falling back to the previous checkpoint", AsklepiosWarning, stacklevel=2
            )
    return None


def _parts(runner: StageRunner) -> dict[str, Any]:
    """Return the components whose ``state_dict`` goes into epoch checkpoints."""
    built = runner.built
    parts = {"loss": built.loss, "trainer": built.trainer, "sampler": built.sampler}
    parts.update({f"batch_transform.{i}": t for i, t in enumerate(built.batch_transforms)})
    return parts


def stage_state(runner: StageRunner, epoch: int) -> dict[str, Any]:
    """Return everything a stage needs to continue after ``epoch`` exactly."""
    parts = _parts(runner).items()
    state: dict[str, Any] = {
        "model": runner.model.state_dict(),
        "backbone": runner.built.backbone.state_dict(),
        "optimizers": {k: v.state_dict() for k, v in runner.optimizers.items()},
        "schedules": {k: v.state_dict() for k, v in runner.schedules.items()},
        "components": {
            k: p.state_dict() for k, p in parts if p is not None and hasattr(p, "state_dict")
        },
        "rng": get_rng_state(),
        "epoch": epoch,
        "global_step": runner.global_step,
        "best_value": runner.best_value,
        "best_epoch": runner.best_epoch,
        "monitor_key": runner.monitor_key,
        "monitor_mode": runner.monitor_mode,
        "metrics_offset": runner.log.offset(),
        "stage": runner.stage,
        "last_val": runner.last_val,
    }
    if runner.scaler is not None:
        state["scaler"] = runner.scaler.state_dict()
    return state


def restore_stage_state(runner: StageRunner, state: Mapping[str, Any]) -> None:
    """Load :func:`stage_state`'s ``state`` into ``runner``: it continues with the next epoch."""
    runner.model.load_state_dict(state["model"])
    for name, opt in runner.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, schedule in runner.schedules.items():
        schedule.load_state_dict(state["schedules"][name])
    if runner.scaler is not None and "scaler" in state:
        runner.scaler.load_state_dict(state["scaler"])
    parts = _parts(runner)
    for name, value in state.get("components", {}).items():
        part = parts.get(name)
        if part is not None and hasattr(part, "load_state_dict"):
            part.load_state_dict(value)
    set_rng_state(state["rng"])
    runner.start_epoch = int(state["epoch"]) + 1
    runner.global_step = int(state["global_step"])
    runner.best_value = state["best_value"]
    runner.best_epoch = state["best_epoch"]
    runner.monitor_key = state["monitor_key"]
    runner.monitor_mode = state["monitor_mode"]
    runner.last_val = dict(state.get("last_val", {}))
