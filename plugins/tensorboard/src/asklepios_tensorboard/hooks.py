"""Hook module of the ``tensorboard`` plugin: settings and lifecycle hooks, rank 0 only.

Every lifecycle hook hands its work to the run's :class:`~asklepios_tensorboard.tracker.
TensorBoardSession` (imported when a run starts, with TensorBoard's writer); a failure there is a
warning written into ``record.json`` and never stops training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import RunState
    from asklepios_sdk.registration import RegisterSettings


@hookimpl
def register_settings(register: RegisterSettings) -> None:
    """Declare the ``tracking.tensorboard`` entry of configs."""
    from asklepios_tensorboard.params import TensorBoardParams

    register("tracking", TensorBoardParams)


@hookimpl
def run_start(run: RunState) -> None:
    """Open the event writer and add the config as text (rank 0, unless disabled)."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        tracker.start(run)


@hookimpl
def step_end(run: RunState, step: int, losses: Mapping[str, float]) -> None:
    """Add the step's loss terms every ``log_every_n_steps`` optimiser steps."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        session = tracker.SESSIONS.get(run.output_dir)
        if session is not None:
            session.call("writing step scalars", session.step, run.stage, step, losses)


@hookimpl
def epoch_end(run: RunState, epoch: int, metrics: Mapping[str, float]) -> None:
    """Add the epoch's mean training losses and learning rate."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        session = tracker.SESSIONS.get(run.output_dir)
        if session is not None:
            session.call("writing epoch scalars", session.epoch, run, epoch, metrics)


@hookimpl
def evaluation_end(run: RunState, split: str, metrics: Mapping[str, float]) -> None:
    """Add the scalar metrics of a validation or test evaluation."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        session = tracker.SESSIONS.get(run.output_dir)
        if session is not None:
            session.call(f"writing {split} metrics", session.evaluation, run, split, metrics)


@hookimpl
def run_end(run: RunState, summary: Mapping[str, Any]) -> None:
    """Add hparams with the final test metrics and the plots; close the writer."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        tracker.finish(run, summary)


@hookimpl
def run_failed(run: RunState, error: str, interrupted: bool) -> None:
    """Flush and close the writer of a run that stopped early (its events so far stay)."""
    if run.is_main:
        from asklepios_tensorboard import tracker

        tracker.abandon(run)


@hookimpl
def record_metadata(run: RunState) -> Mapping[str, Any] | None:
    """Say where the event files are, and any tracker failure, in ``record.json``."""
    if not run.is_main:
        return None
    from asklepios_tensorboard import tracker

    return tracker.SESSIONS.metadata(run.output_dir)
