"""Settings of the TensorBoard tracker: the ``tracking.tensorboard`` entry of a config."""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field, PositiveInt

__all__ = ["TensorBoardParams"]


class TensorBoardParams(Params):
    """Where and what the TensorBoard tracker writes (every field has a default)."""

    enabled: bool = Field(True, description="Write TensorBoard logs for this run.")
    log_dir: str | None = Field(
        None,
        description="Folder of the event files; relative paths are under the run directory. "
        "Default: <run_dir>/tensorboard.",
    )
    log_every_n_steps: PositiveInt = Field(
        1, description="Write the per-step training losses every n optimiser steps."
    )
    images: bool = Field(True, description="Add the run's plots (plots/**/*.png) as images.")
    hparams: bool = Field(
        True, description="Add the flattened config as hparams with the final test metrics."
    )
    flush_secs: PositiveInt = Field(30, description="Seconds between flushes to disk.")
