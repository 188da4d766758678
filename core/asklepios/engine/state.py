"""The run state lifecycle hooks receive, and the metrics log every rank-0 event goes to."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import BuildContext
from torch import nn

__all__ = ["MetricsLog", "RunStateView", "to_jsonable"]


@dataclass
class RunStateView:
    """The run as lifecycle hooks see it (the SDK's ``RunState`` protocol)."""

    config: Any
    context: BuildContext
    output_dir: str
    rank: int
    world_size: int
    is_main: bool
    stage: str = "main"
    epoch: int = 0
    global_step: int = 0
    model: nn.Module | None = None
    optimizers: Mapping[str, torch.optim.Optimizer] = field(default_factory=dict)


def to_jsonable(value: Any) -> Any:
    """Convert tensors, arrays and nested containers to JSON values (NaN becomes ``None``)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return to_jsonable(value.item() if value.dim() == 0 else value.tolist())
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append one JSON object per line to ``metrics.jsonl`` (rank 0 only; others no-op)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, record: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(to_jsonable(dict(record))) + "\n")

    def offset(self) -> int:
        """Return the current size in bytes (stored in checkpoints to truncate on resume)."""
        if self.path is None or not self.path.exists():
            return 0
        return self.path.stat().st_size

    def truncate(self, offset: int) -> None:
        """Drop everything written after ``offset`` (lines of an interrupted epoch)."""
        if self.path is None or not self.path.exists():
            return
        with self.path.open("r+b") as handle:
            handle.truncate(offset)
