"""Atomic state-dict checkpoints: written to a temp file and renamed, read with weights_only.

A corrupt or truncated file gives :class:`CheckpointError` naming it; :func:`load_latest` then
falls back to the previous good checkpoint with a warning.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import AsklepiosError, AsklepiosWarning
from asklepios_sdk.io import write_atomic

__all__ = [
    "CheckpointError",
    "epoch_checkpoints",
    "load_checkpoint",
    "load_latest",
    "prune_epoch_checkpoints",
    "save_checkpoint",
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
