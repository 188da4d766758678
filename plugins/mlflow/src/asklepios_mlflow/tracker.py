"""One MLflow run per asklepios run: params, metrics, artifacts and tags, logged on rank 0.

Metrics: ``<stage>/train/<term>`` (epoch means and ``lr``), ``<stage>/val/<metric>`` and
``<stage>/test/<metric>`` with the 0-based epoch as step, ``test/<metric>`` for the run's final
test metrics; a ``/`` inside a metric key becomes ``.`` (``main/val/classification.accuracy``).
Params: the resolved config flattened to dotted keys. Tags: core, SDK, Python and torch versions
and every plugin version from ``record.json``, the config's sha256, the seed and the run
directory. Artifacts: ``config.yaml``, ``record.json``, ``summary.json``,
``metrics.jsonl``/``metrics.csv``, ``plots/`` and, on request, the selected checkpoint.

Without a ``tracking_uri`` the run goes to a file store in ``<run_dir>/mlruns``: no server and no
database. MLflow 3 keeps that store in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true``; the session sets that variable only while it calls MLflow on a
file store, so nothing else in the process sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk.registration import read_settings
from asklepios_sdk.tracking import Sessions, TrackerSession, flatten, scalar_metrics

from asklepios_mlflow import __version__
from asklepios_mlflow.params import MLflowParams

if TYPE_CHECKING:
    from asklepios_sdk import RunState
    from mlflow import MlflowClient

__all__ = ["SESSIONS", "MLflowSession", "allow_file_store", "finish", "metric_key", "start"]

PLUGIN_ID = "mlflow"
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a param value (longer values are cut, with '...')."""
_BATCH = 100
"""Params (and tags) per ``log_batch`` call, MLflow's limit."""
_BAD_KEY = re.compile(r"[^\w\-. /]")


def metric_key(prefix: str, key: str) -> str:
    """Return the MLflow name of metric ``key`` under ``prefix`` (``main/val/``).

    ``/`` inside ``key`` becomes ``.``: MLflow's file store keeps a metric as a file at its name's
    path, so ``model/acc`` and ``model/acc/mean`` (an evaluator may return both) cannot both be
    names there. Characters MLflow refuses in names become ``_``.
    """
    return prefix + _BAD_KEY.sub("_", key.replace("/", "."))


def _is_file_store(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file:")


@contextlib.contextmanager
def allow_file_store(uri: str) -> Iterator[None]:
    """Let MLflow open the file store at ``uri`` (sets ``MLFLOW_ALLOW_FILE_STORE`` meanwhile)."""
    if not _is_file_store(uri) or os.environ.get(FILE_STORE_ENV):
        yield
        return
    os.environ[FILE_STORE_ENV] = "true"
    try:
        yield
    finally:
        os.environ.pop(FILE_STORE_ENV, None)


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "record.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _tags(record: Mapping[str, Any], run_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """Return the tags of the MLflow run: versions and facts from the run record."""
    tags = {"asklepios.run_dir": str(run_dir), "asklepios.mlflow_plugin": __version__}
    for key, value in (record.get("environment") or {}).items():
        if isinstance(value, str):
            tags[f"asklepios.env.{key}"] = value
    for plugin in record.get("plugins") or []:
        tags[f"asklepios.plugin.{plugin['id']}"] = str(plugin.get("version"))
    for key in ("config_sha256", "seed", "world_size", "device", "git_commit"):
        if record.get(key) is not None:
            tags[f"asklepios.{key}"] = str(record[key])
    tags.update(extra)
    return tags


def selected_checkpoint(run_dir: Path, summary: Mapping[str, Any]) -> Path | None:
    """Return the checkpoint the last tested stage used (a stage of 0 epochs has none)."""
    folds = summary.get("folds")
    folder = run_dir / f"fold-{folds[-1]['fold']}" if folds else run_dir
    stages = list((summary.get("stages") or {}).items())
    for name, stage in reversed(stages):
        path = folder / "checkpoints" / name / f"{stage.get('selected_checkpoint', 'last')}.pt"
        if path.is_file():
            return path
    return None


class MLflowSession(TrackerSession):
    """The MLflow run of one asklepios run."""

    plugin_id = PLUGIN_ID
    version = __version__

    def __init__(self, run_dir: str | Path, settings: MLflowParams) -> None:
        super().__init__(run_dir)
        self.settings = settings
        self.uri = settings.tracking_uri or (self.run_dir / "mlruns").resolve().as_uri()
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    def call(self, what: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        with allow_file_store(self.uri):
            return super().call(what, action, *args, **kwargs)

    def _client(self) -> tuple[MlflowClient, str]:
        if self.client is None or self.run_id is None:
            raise RuntimeError("the MLflow run is not started")
        return self.client, self.run_id

    def open(self, config: Any) -> None:
        """Create (or find) the experiment, start the run, log tags and the config as params."""
        from mlflow import MlflowClient
        from mlflow.entities import Param, RunTag

        client = MlflowClient(tracking_uri=self.uri)
        name = self.settings.experiment or getattr(config, "name", None) or "asklepios"
        experiment = client.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id if experiment is not None else client.create_experiment(name)
        )
        tags = _tags(_read_record(self.run_dir), self.run_dir, self.settings.tags)
        run = client.create_run(
            self.experiment_id, run_name=self.settings.run_name or self.run_dir.name
        )
        self.client, self.run_id = client, run.info.run_id
        plain = config.model_dump(mode="json") if hasattr(config, "model_dump") else {}
        params = [Param(k, _param_value(v)) for k, v in flatten(plain).items()]
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(params):
            client.log_batch(self.run_id, params=chunk)
        for chunk in _chunks(tag_list):
            client.log_batch(self.run_id, tags=chunk)

    def _log(self, values: Mapping[str, float], prefix: str, step: int) -> None:
        from mlflow.entities import Metric

        client, run_id = self._client()
        now = int(time.time() * 1000)
        metrics = [Metric(metric_key(prefix, k), v, now, step) for k, v in values.items()]
        if metrics:
            client.log_batch(run_id, metrics=metrics)

    def epoch(self, run: RunState, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log an epoch's mean training losses and the main optimiser's learning rate."""
        values = scalar_metrics(metrics)
        main = run.optimizers.get("main") if run.optimizers else None
        if main is not None:
            values["lr"] = float(main.param_groups[0]["lr"])
        self._log(values, f"{run.stage}/train/", epoch)

    def evaluation(self, run: RunState, split: str, metrics: Mapping[str, Any]) -> None:
        """Log the scalar metrics of evaluating ``split`` at the current epoch."""
        self._log(scalar_metrics(metrics), f"{run.stage}/{split}/", run.epoch)

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Log the final test metrics and the artifacts, then end the MLflow run."""
        client, run_id = self._client()
        self._log(scalar_metrics(summary.get("test") or {}), "test/", 0)
        client.log_dict(run_id, json.loads(json.dumps(summary, default=str)), "summary.json")
        for name in ("config.yaml", "record.json", "metrics.jsonl", "metrics.csv"):
            if (self.run_dir / name).is_file():
                client.log_artifact(run_id, str(self.run_dir / name))
        plots = self.run_dir / "plots"
        if self.settings.log_plots and plots.is_dir():
            client.log_artifacts(run_id, str(plots), "plots")
        if self.settings.log_checkpoint:
            checkpoint = selected_checkpoint(self.run_dir, summary)
            if checkpoint is not None:
                where = checkpoint.parent.relative_to(self.run_dir).as_posix()
                client.log_artifact(run_id, str(checkpoint), where)
        client.set_terminated(run_id, "FINISHED")

    def abandon(self, error: str, interrupted: bool) -> None:
        """End the MLflow run as KILLED (interrupted, resumable) or FAILED, saying why."""
        client, run_id = self._client()
        client.set_tag(run_id, "asklepios.error", error[:MAX_PARAM_LENGTH])
        client.set_terminated(run_id, "KILLED" if interrupted else "FAILED")

    def describe(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]


SESSIONS: Sessions[MLflowSession] = Sessions()
"""The open (and finished) sessions of this process, by run directory."""


def start(run: RunState) -> MLflowSession | None:
    """Start the MLflow run of ``run`` unless ``tracking.mlflow.enabled`` is false."""
    settings = read_settings(run.config, "tracking", PLUGIN_ID, MLflowParams)
    if not settings.enabled:
        return None
    session = SESSIONS.start(run.output_dir, MLflowSession(run.output_dir, settings))
    session.call(f"starting an MLflow run at {session.uri}", session.open, run.config)
    return session


def finish(run: RunState, summary: Mapping[str, Any]) -> None:
    """Log the run's final metrics and artifacts and end its session (the record entry stays)."""
    session = SESSIONS.get(run.output_dir)
    if session is not None:
        session.call("logging the final metrics and artifacts", session.finish, summary)
    SESSIONS.finish(run.output_dir)


def abandon(run: RunState, error: str, interrupted: bool) -> None:
    """End the MLflow run of a run that stopped early, so it does not stay RUNNING."""
    session = SESSIONS.get(run.output_dir)
    if session is not None:
        session.call("ending the MLflow run", session.abandon, error, interrupted)
    SESSIONS.finish(run.output_dir)
