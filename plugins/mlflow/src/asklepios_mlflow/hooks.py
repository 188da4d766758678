"""Hook module of the ``mlflow`` plugin: settings and lifecycle hooks, rank 0 only.

Every lifecycle hook hands its work to the run's :class:`~asklepios_mlflow.tracker.
MLflowSession` (imported when a run starts, with MLflow); a failure there is a warning written
into ``record.json`` and never stops training.
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
    """Declare the ``tracking.mlflow`` entry of configs."""
    from asklepios_mlflow.params import MLflowParams

    register("tracking", MLflowParams)


@hookimpl
def run_start(run: RunState) -> None:
    """Start the MLflow run: tags with plugin versions, the flattened config as params."""
    if run.is_main:
        from asklepios_mlflow import tracker

        tracker.start(run)


@hookimpl
def epoch_end(run: RunState, epoch: int, metrics: Mapping[str, float]) -> None:
    """Log the epoch's mean training losses and learning rate."""
    if run.is_main:
        from asklepios_mlflow import tracker

        session = tracker.SESSIONS.get(run.output_dir)
        if session is not None:
            session.call("logging epoch metrics", session.epoch, run, epoch, metrics)


@hookimpl
def evaluation_end(run: RunState, split: str, metrics: Mapping[str, float]) -> None:
    """Log the scalar metrics of a validation or test evaluation."""
    if run.is_main:
        from asklepios_mlflow import tracker

        session = tracker.SESSIONS.get(run.output_dir)
        if session is not None:
            session.call(f"logging {split} metrics", session.evaluation, run, split, metrics)


@hookimpl
def run_end(run: RunState, summary: Mapping[str, Any]) -> None:
    """Log the final test metrics and the artifacts; end the MLflow run."""
    if run.is_main:
        from asklepios_mlflow import tracker

        tracker.finish(run, summary)


@hookimpl
def run_failed(run: RunState, error: str, interrupted: bool) -> None:
    """End the MLflow run as FAILED (an error) or KILLED (Ctrl-C), with the error as a tag."""
    if run.is_main:
        from asklepios_mlflow import tracker

        tracker.abandon(run, error, interrupted)


@hookimpl
def record_metadata(run: RunState) -> Mapping[str, Any] | None:
    """Say which MLflow run holds this run, and any tracker failure, in ``record.json``."""
    if not run.is_main:
        return None
    from asklepios_mlflow import tracker

    return tracker.SESSIONS.metadata(run.output_dir)
