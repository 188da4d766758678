"""Progress display: rich bars with ETA and the running loss on a TTY, plain lines elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RunProgress", "format_metrics"]


def format_metrics(metrics: Mapping[str, Any], limit: int = 6) -> str:
    """Return ``key=value`` pairs of the scalar metrics, four significant digits."""
    items = [(k, v) for k, v in metrics.items() if isinstance(v, int | float)][:limit]
    return "  ".join(f"{k}={v:.4g}" for k, v in items)


class RunProgress:
    """Show one bar per epoch on a TTY (rank 0, not quiet); otherwise one line per event."""

    def __init__(self, enabled: bool, quiet: bool, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False)
        self.enabled = enabled and not quiet
        self.live = self.enabled and sys.stdout.isatty() and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None

    def start_epoch(self, stage: str, epoch: int, epochs: int, steps: int) -> None:
        if not self.live:
            return
        self._progress = Progress(
            TextColumn(f"[bold]{stage}[/] epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, loss="")

    def advance(self, steps: int, loss: float | None = None) -> None:
        if self._progress is None:
            return
        if loss is None:
            self._progress.update(self._task, advance=steps)
        else:
            self._progress.update(self._task, advance=steps, loss=f"loss {loss:.4f}")

    def end_epoch(self, message: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.log(message)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)
