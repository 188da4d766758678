"""Training display: one live view per run on a terminal, one line per epoch elsewhere.

:class:`RunProgress` is all the engine talks to, in one of three modes:

* ``live`` (rank 0, a terminal, not ``--quiet``): one rich live view for the whole run -- the run
  directory, a header per stage, the epoch bar (advanced every step, with ETA and the running
  loss from the first steps), a bar per validation or test pass, and after each epoch a line of
  whole ``name=value`` items wrapped to the terminal's width;
* ``lines`` (rank 0, output is not a terminal): the run directory, the stage headers and one
  line per epoch;
* ``off`` (``--quiet``, or a rank other than 0): nothing.

In every mode it keeps the position (stage, epoch, step), so that Ctrl-C can say where the run
stopped: leaving its ``with`` block on :class:`KeyboardInterrupt` stops the live view (which shows
the cursor again) and raises :class:`RunInterrupted` with the message and the resume command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RunInterrupted", "RunProgress", "epoch_items", "format_value", "wrap_items"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; ``message`` says where and how to continue it."""

    def __init__(self, where: str, run_dir: Path | None) -> None:
        self.where = where
        self.run_dir = run_dir
        message = f"interrupted at {where}"
        if run_dir is not None:
            message += f"; resume with: asklepios run --resume {run_dir}"
        self.message = message
        super().__init__(message)


def format_value(value: Any) -> str:
    """Return a metric value with four significant digits (``nan`` and ``inf`` as such)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def _short(key: str, keys: Sequence[str]) -> str:
    """Drop the evaluator prefix of ``key`` when no other key has the same tail."""
    tail = key.rsplit("/", 1)[-1] if "/" in key else key
    clash = sum(1 for k in keys if (k.rsplit("/", 1)[-1] if "/" in k else k) == tail)
    return tail if clash == 1 else key


def epoch_items(
    train: Mapping[str, float],
    val: Mapping[str, Any] | None,
    monitor: str | None,
    headline: Sequence[str] = (),
    best: bool = False,
) -> list[str]:
    """Return the ``name=value`` items of one epoch's line.

    Always the total training loss and, when validation ran, the validation loss (if any) and
    the monitored metric (marked ``*`` when it is the best so far), then the loss terms and the
    other headline validation metrics.
    """
    items = [f"loss={format_value(train['loss'])}"] if "loss" in train else []
    terms = [k for k in train if k != "loss"]
    if len(terms) > 1 or (terms and train[terms[0]] != train.get("loss")):
        items += [f"{k}={format_value(train[k])}" for k in terms]
    if val is None:
        return items
    keys = [k for k in headline if k != "loss" and k in val]
    if monitor is not None and monitor in val and monitor != "loss":
        keys = [monitor, *(k for k in keys if k != monitor)]
    if "loss" in val:
        mark = "*" if best and monitor == "loss" else ""
        items.append(f"val_loss={format_value(val['loss'])}{mark}")
    for key in keys:
        mark = "*" if best and key == monitor else ""
        items.append(f"val_{_short(key, keys)}={format_value(val[key])}{mark}")
    return items


def wrap_items(head: str, items: Sequence[str], width: int | None, indent: int = 4) -> str:
    """Join ``head`` and ``items`` with two spaces, breaking lines between items only."""
    lines, line = [], head
    for item in items:
        if width is not None and len(line) + 2 + len(item) > width and line.strip():
            lines.append(line)
            line = " " * indent + item
        else:
            line = f"{line}  {item}" if line else item
    lines.append(line)
    return "\n".join(lines)


@dataclass
class _Position:
    stage: str | None = None
    epoch: int | None = None  # 0-based, of the epoch being trained or last trained
    epochs: int = 0
    step: int = 0
    split: str | None = None  # the evaluation running, if any
    batch: int = 0
    batches: int = 0
    finished: bool = False

    def describe(self) -> str:
        if self.stage is None:
            return "the start, before the first stage"
        if self.finished:
            return f"{self.stage}, after the last stage (writing the summary)"
        where = self.stage
        if self.epoch is not None:
            where += f" epoch {self.epoch + 1} step {self.step}"
        if self.split is not None:
            where += f" ({self.split} batch {self.batch}/{self.batches})"
        return where


class RunProgress:
    """Show a run's progress on rank 0: live on a terminal, as lines elsewhere, or not at all.

    Args:
        enabled: whether this process shows anything (rank 0).
        quiet: show nothing (``--quiet``).
        console: where to print (default: standard output).
        live: force the live view on or off (default: on when ``console`` is a terminal).
    """

    def __init__(
        self,
        enabled: bool,
        quiet: bool,
        console: Console | None = None,
        live: bool | None = None,
    ) -> None:
        self.console = console or Console(highlight=False)
        self.enabled = enabled and not quiet
        is_live = self.console.is_terminal if live is None else live
        self.mode = "off" if not self.enabled else ("live" if is_live else "lines")
        self.live = self.mode == "live"
        self.run_dir: Path | None = None
        self.position = _Position()
        self._progress: Progress | None = None
        self._epoch_task: TaskID | None = None
        self._eval_task: TaskID | None = None
        self._loss_every = 10

    # -- the run ---------------------------------------------------------------------------------

    def __enter__(self) -> RunProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
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
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise RunInterrupted(self.position.describe(), self.run_dir) from exc

    def close(self) -> None:
        """Stop the live view (the terminal gets its cursor back); safe to call twice."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._epoch_task = self._eval_task = None

    def run_started(self, run_dir: Path, resuming: bool) -> None:
        """Say which run directory this run writes (or continues)."""
        self.run_dir = run_dir
        self.log(f"{'resuming' if resuming else 'run directory'} {run_dir}")

    def run_finished(self) -> None:
        """Mark the stages done: an interruption from now on happens while writing the summary."""
        self.position.finished = True

    def stage_started(
        self,
        name: str,
        index: int,
        count: int,
        epochs: int,
        steps: int,
        init_from: str | None = None,
        freeze: Sequence[str] = (),
        parameters: tuple[int, int] | None = None,
    ) -> None:
        """Show the stage header: its name, epochs, what it starts from and what it freezes.

        Args:
            name: the stage; index: its position (0-based) among ``count`` stages.
            epochs: epochs to train (0: evaluation only); steps: batches per epoch.
            init_from: ``"<stage> (<checkpoint>)"`` when it starts from another stage.
            freeze: the freeze patterns.
            parameters: ``(trainable, total)`` parameter counts.
        """
        self.position = _Position(stage=name)
        what = f"{epochs} epoch{'s' * (epochs != 1)} of {steps} steps" if epochs else "evaluation"
        parts = [what]
        if init_from:
            parts.append(f"from {init_from}")
        if freeze:
            parts.append(f"frozen {', '.join(freeze)}")
        if parameters is not None and epochs:
            trainable, total = parameters
            parts.append(f"{_count(trainable)} of {_count(total)} parameters trained")
        title = f"stage {index + 1}/{count}: {name}" if count > 1 else f"stage {name}"
        if self.live:
            self.console.rule(f"[bold]{title}", align="left")
            self.console.print("  " + " · ".join(parts), markup=False, soft_wrap=True)
        else:
            self.log(f"{title} -- {'; '.join(parts)}")

    # -- training --------------------------------------------------------------------------------

    def start_epoch(
        self, stage: str, epoch: int, epochs: int, steps: int, loss_every: int = 10
    ) -> None:
        """Start the bar of one epoch of ``steps`` batches.

        The running loss it shows is read (a device sync on GPUs) after the first two steps and
        then every ``loss_every`` steps (``train.log_every``).
        """
        pos = self.position
        pos.stage, pos.epoch, pos.epochs, pos.step, pos.split = stage, epoch, epochs, 0, None
        self._loss_every = max(1, loss_every)
        if self._progress is not None:
            self._epoch_task = self._progress.add_task(
                f"[bold]{stage}[/] epoch {epoch + 1}/{epochs}", total=steps, loss=""
            )

    def step(self, loss_sum: Any, count: int, counted: int | None = None) -> None:
        """Record that ``count`` batches of the epoch are done, with their summed loss.

        ``loss_sum`` adds the losses of ``counted`` of them (default all; batches held back for
        a non-finite loss are not); it may be a tensor, read only when the live view shows it.
        """
        self.position.step = count
        if self._progress is None or self._epoch_task is None:
            return
        if count <= 2 or count % self._loss_every == 0:
            loss = float(loss_sum) / max(1, count if counted is None else counted)
            self._progress.update(self._epoch_task, completed=count, loss=f"loss {loss:.4f}")
        else:
            self._progress.update(self._epoch_task, completed=count)

    def end_epoch(self, items: Sequence[str]) -> None:
        """Close the epoch's bar and print its line of ``name=value`` items."""
        pos = self.position
        if self._progress is not None and self._epoch_task is not None:
            self._progress.remove_task(self._epoch_task)
            self._epoch_task = None
        pos.split = None
        head = f"{pos.stage} epoch {(pos.epoch or 0) + 1}/{pos.epochs}"
        if self.mode == "live":
            self.console.print(
                wrap_items(head, items, self.console.width), markup=False, soft_wrap=True
            )
        elif self.mode == "lines":
            self.console.print(wrap_items(head, items, None), markup=False, soft_wrap=True)

    # -- evaluation ------------------------------------------------------------------------------

    def start_eval(self, split: str, batches: int) -> None:
        """Start the bar of one evaluation pass over ``batches`` batches of ``split``."""
        name = {"val": "validation"}.get(split, split)
        pos = self.position
        pos.split, pos.batch, pos.batches = name, 0, batches
        if self._progress is not None:
            self._eval_task = self._progress.add_task(
                f"[bold]{pos.stage}[/] {name}", total=batches, loss=""
            )

    def eval_step(self) -> None:
        """Advance the evaluation bar by one batch."""
        self.position.batch += 1
        if self._progress is not None and self._eval_task is not None:
            self._progress.update(self._eval_task, completed=self.position.batch)

    def end_eval(self) -> None:
        """Close the evaluation bar."""
        self.position.split = None
        if self._progress is not None and self._eval_task is not None:
            self._progress.remove_task(self._eval_task)
            self._eval_task = None

    # -- messages --------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """Print one message (above the bars on a terminal); nothing when quiet."""
        if self.enabled:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
