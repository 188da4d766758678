"""Settings of the MLflow tracker: the ``tracking.mlflow`` entry of a config."""

from __future__ import annotations

from asklepios_sdk import Params
from pydantic import Field

__all__ = ["MLflowParams"]


class MLflowParams(Params):
    """Where the MLflow tracker logs and what it uploads (every field has a default)."""

    enabled: bool = Field(True, description="Log this run to MLflow.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, a folder). "
        "Default: a local file store in <run_dir>/mlruns, no server needed.",
    )
    experiment: str | None = Field(None, description="Experiment name; default: the config's name.")
    run_name: str | None = Field(None, description="Run name; default: the run directory's name.")
    log_checkpoint: bool = Field(
        False, description="Upload the last stage's selected checkpoint (best.pt or last.pt)."
    )
    log_plots: bool = Field(True, description="Upload plots/ as artifacts.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags of the MLflow run.")
