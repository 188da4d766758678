"""One TensorBoard session per run: scalars, hparams, plots and the config, written on rank 0.

Tags: ``<stage>/train_step/<term>`` against the stage's optimiser step, ``<stage>/train/<term>``
(epoch means and ``lr``), ``<stage>/val/<metric>`` and ``<stage>/test/<metric>`` against the
0-based epoch, ``test/<metric>`` for the run's final test metrics (the hparams view's metrics),
``config`` (text) and ``plots/<path>`` (images).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk.registration import read_settings
from asklepios_sdk.tracking import Sessions, TrackerSession, flatten, scalar_metrics

from asklepios_tensorboard import __version__
from asklepios_tensorboard.params import TensorBoardParams

if TYPE_CHECKING:
    from asklepios_sdk import RunState
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["SESSIONS", "TensorBoardSession", "finish", "start"]

PLUGIN_ID = "tensorboard"


def _hparam_value(value: Any) -> int | float | str | bool:
    """Return a value TensorBoard's hparams accept (numbers, strings, booleans)."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


class TensorBoardSession(TrackerSession):
    """The event writer of one run and what it has written."""

    plugin_id = PLUGIN_ID
    version = __version__

    def __init__(self, run_dir: str | Path, settings: TensorBoardParams) -> None:
        super().__init__(run_dir)
        self.settings = settings
        log_dir = Path(settings.log_dir or "tensorboard").expanduser()
        self.log_dir = log_dir if log_dir.is_absolute() else self.run_dir / log_dir
        self.writer: SummaryWriter | None = None

    def open(self, config: Any) -> None:
        """Create the event writer and add the resolved config as text."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=self.settings.flush_secs)
        config_file = self.run_dir / "config.yaml"
        text = config_file.read_text() if config_file.is_file() else repr(config)
        # four-space indentation makes TensorBoard's markdown show it verbatim
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))

    def _writer(self) -> SummaryWriter:
        if self.writer is None:
            raise RuntimeError("the event writer is not open")
        return self.writer

    def step(self, stage: str, step: int, losses: Mapping[str, float]) -> None:
        """Add the loss terms of optimiser step ``step`` (every ``log_every_n_steps``)."""
        if step % self.settings.log_every_n_steps:
            return
        writer = self._writer()
        for key, value in scalar_metrics(losses).items():
            writer.add_scalar(f"{stage}/train_step/{key}", value, step)

    def epoch(self, run: RunState, epoch: int, metrics: Mapping[str, float]) -> None:
        """Add an epoch's mean training losses and the main optimiser's learning rate."""
        writer = self._writer()
        values = scalar_metrics(metrics)
        main = run.optimizers.get("main") if run.optimizers else None
        if main is not None:
            values["lr"] = float(main.param_groups[0]["lr"])
        for key, value in values.items():
            writer.add_scalar(f"{run.stage}/train/{key}", value, epoch)

    def evaluation(self, run: RunState, split: str, metrics: Mapping[str, Any]) -> None:
        """Add the scalar metrics of evaluating ``split`` at the current epoch."""
        writer = self._writer()
        for key, value in scalar_metrics(metrics).items():
            writer.add_scalar(f"{run.stage}/{split}/{key}", value, run.epoch)

    def finish(self, config: Any, summary: Mapping[str, Any]) -> None:
        """Add hparams with the final test metrics and every plot, then close the writer."""
        writer = self._writer()
        final = {f"test/{k}": v for k, v in scalar_metrics(summary.get("test") or {}).items()}
        if self.settings.hparams and final:
            self._hparams(writer, config, final)
        if self.settings.images:
            self._plots(writer)
        writer.close()
        self.writer = None

    def _hparams(self, writer: SummaryWriter, config: Any, final: Mapping[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        plain = config.model_dump(mode="json") if hasattr(config, "model_dump") else {}
        values = {k: _hparam_value(v) for k, v in flatten(plain).items()}
        file_writer: Any = writer.file_writer  # torch annotates it None until the writer opens
        for part in hparams(values, dict(final)):
            file_writer.add_summary(part)
        for key, value in final.items():
            writer.add_scalar(key, value, 0)

    def _plots(self, writer: SummaryWriter) -> None:
        import numpy as np
        from PIL import Image

        plots = self.run_dir / "plots"
        for path in sorted(plots.rglob("*.png")) if plots.is_dir() else []:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            tag = "plots/" + path.relative_to(plots).with_suffix("").as_posix()
            writer.add_image(tag, pixels, 0, dataformats="HWC")

    def close_quietly(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):  # already failing; the warning says why
                self.writer.close()
            self.writer = None

    def describe(self) -> dict[str, Any]:
        return {"log_dir": str(self.log_dir)}


SESSIONS: Sessions[TensorBoardSession] = Sessions()
"""The open (and finished) sessions of this process, by run directory."""


def start(run: RunState) -> TensorBoardSession | None:
    """Open the session of ``run`` unless ``tracking.tensorboard.enabled`` is false."""
    settings = read_settings(run.config, "tracking", PLUGIN_ID, TensorBoardParams)
    if not settings.enabled:
        return None
    session = SESSIONS.start(run.output_dir, TensorBoardSession(run.output_dir, settings))
    session.call(f"opening the event writer in {session.log_dir}", session.open, run.config)
    return session


def finish(run: RunState, summary: Mapping[str, Any]) -> None:
    """Write the run's final records and close its session (the record entry stays)."""
    session = SESSIONS.get(run.output_dir)
    if session is not None:
        session.call("writing hparams and plots", session.finish, run.config, summary)
    SESSIONS.finish(run.output_dir)


def abandon(run: RunState) -> None:
    """Close the writer of a run that stopped early; what it wrote so far stays readable."""
    session = SESSIONS.get(run.output_dir)
    if session is not None:
        session.close_quietly()
    SESSIONS.finish(run.output_dir)
