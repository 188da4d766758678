"""The Python API: what the CLI does, for notebooks and scripts (re-exported by ``asklepios``).

>>> import asklepios
>>> config = asklepios.load_config("examples/configs/quickstart.yaml", ["train.epochs=1"])
>>> run = asklepios.run(config)                        # trains, writes the run directory
>>> run.summary["test"]["classification/accuracy"]     # doctest: +SKIP
>>> run.metrics                                        # a DataFrame with pandas installed
>>> run.predict("new_images/")                         # one row per image
>>> asklepios.compare(["runs/quickstart-*"])           # final test metrics side by side

Importing this module imports neither torch nor any plugin; each function imports what it needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk import AsklepiosError

if TYPE_CHECKING:
    from torch import nn

    from asklepios.compare import Comparison
    from asklepios.config import ExperimentConfig
    from asklepios.errors import ConfigIssue
    from asklepios.export import Exported
    from asklepios.inference import Data, LoadedModel, Predictions
    from asklepios.plugins import PluginHost

__all__ = ["Run", "RunOpenError", "compare", "load_config", "run", "validate"]


class RunOpenError(AsklepiosError):
    """A folder is not a finished run directory."""


def _host(host: PluginHost | None) -> PluginHost:
    from asklepios.plugins import get_host

    return host or get_host()


def load_config(
    source: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    host: PluginHost | None = None,
) -> ExperimentConfig:
    """Read (a file) or take (a mapping) a config, apply ``overrides`` and validate it.

    Args:
        source: a ``.yaml``/``.json`` file, or the config as a mapping.
        overrides: ``"key.path=value"`` strings, as ``--set`` takes them.
        host: the plugin host (default: the process-wide one).

    Returns:
        The validated config, component ids resolved and every default filled in.

    Raises:
        ConfigError: every problem at once (``err.issues``).
    """
    from asklepios import config as cfg

    if isinstance(source, Mapping):
        from asklepios.config.loader import Origins, apply_overrides, merge

        raw = merge({}, source)
        apply_overrides(raw, overrides, Origins("<config>"))
        return cfg.validate_config(raw, host=_host(host))
    return cfg.load_config(source, overrides, host=_host(host))


def validate(
    source: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    host: PluginHost | None = None,
) -> list[ConfigIssue]:
    """Return every problem of a config (empty when it is valid); never raises for them.

    Each :class:`~asklepios.errors.ConfigIssue` has ``file``, ``line``, ``path``, ``message``,
    ``component``, ``plugin`` and ``suggestion``; ``issue.format()`` gives the CLI's text.
    """
    from asklepios.errors import ConfigError

    try:
        load_config(source, overrides, host=host)
    except ConfigError as err:
        return list(err.issues)
    return []


def run(
    config: ExperimentConfig | str | Path | Mapping[str, Any],
    run_dir: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    quiet: bool = True,
    device: str | None = None,
    folds: int | None = None,
    host: PluginHost | None = None,
) -> Run:
    """Run an experiment (train, validate, test) and return the finished :class:`Run`.

    Args:
        config: a validated config, a config file or a mapping (validated here).
        run_dir: the folder to write the run to (created; must be new or empty); default
            ``<output_dir>/<name>-<time>``.
        overrides: ``--set`` strings, applied when ``config`` is a file or mapping.
        quiet: no progress bars or summary table (the default in notebooks).
        device: overrides ``train.device``.
        folds: k-fold cross-validation over train+val.
        host: the plugin host (default: the process-wide one).
    """
    from asklepios.config import ExperimentConfig
    from asklepios.engine.run import run_experiment
    from asklepios.records import command_line

    host = _host(host)
    if not isinstance(config, ExperimentConfig):
        config = load_config(config, overrides, host=host)
    elif overrides:
        raise AsklepiosError("overrides apply to a file or mapping; edit the config object instead")
    summary = run_experiment(
        config,
        host=host,
        new_dir=run_dir,
        quiet=quiet,
        device=device,
        folds=folds,
        argv=command_line(),
    )
    return Run.open(summary["run_dir"], host=host)


def compare(runs: Sequence[str | Path], metrics: Sequence[str] = ()) -> Comparison:
    """Compare finished runs: final test metrics, config and record differences.

    ``runs`` are run directories or glob patterns (``"runs/lt-*"``); ``metrics`` picks the keys
    (default: each evaluator's headline keys). See :class:`asklepios.compare.Comparison`.
    """
    from asklepios.compare import compare_runs, expand_runs

    return compare_runs(expand_runs(runs), metrics)


class Run:
    """A finished (or stopped) run directory: config, record, summary, metrics, model.

    Open one with :meth:`Run.open` (or get it from :func:`run`). The files are read once, when
    the run is opened; the model is rebuilt on each :meth:`model` call.

    Attributes:
        path: the run directory.
        config: the resolved config the run used (``config.yaml``), validated again.
        record: ``record.json`` as a dict (versions, plugins, seeds, device, ...).
        summary: ``summary.json`` as a dict (per stage best epoch and metrics, ``test``).
    """

    def __init__(
        self,
        path: Path,
        config: ExperimentConfig,
        record: dict[str, Any],
        summary: dict[str, Any],
        host: PluginHost,
    ) -> None:
        self.path = path
        self.config = config
        self.record = record
        self.summary = summary
        self._host = host

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @classmethod
    def open(cls, run_dir: str | Path, *, host: PluginHost | None = None) -> Run:
        """Open a run directory written by ``asklepios run``.

        Raises:
            RunOpenError: the folder has no ``config.yaml``, or its files are unreadable.
            ConfigError: the config no longer validates with the installed plugins.
        """
        path = Path(run_dir)
        if not (path / "config.yaml").is_file():
            raise RunOpenError(f"{path} has no config.yaml; is it a run directory?")
        from asklepios.config import validate_config

        host = _host(host)
        raw = _without_absent_trackers(path / "config.yaml", host)
        # the run's data may have moved since: the config must validate, not its files exist
        config = validate_config(
            raw, source=str(path / "config.yaml"), host=host, check_files=False
        )
        return cls(path, config, _read_json(path / "record.json"), _summary(path), host)

    @property
    def metrics(self) -> Any:
        """Return every line of ``metrics.jsonl``: a pandas DataFrame, else a list of dicts.

        Folds of a cross-validated run are concatenated with a ``fold`` column.
        """
        from asklepios.reporting import read_metrics

        files = sorted(self.path.glob("fold-*/metrics.jsonl")) or [self.path / "metrics.jsonl"]
        rows: list[dict[str, Any]] = []
        for file in files:
            fold = file.parent.name.removeprefix("fold-") if file.parent != self.path else None
            for row in read_metrics(file):
                rows.append({"fold": int(fold), **row} if fold is not None else row)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    @property
    def test_metrics(self) -> dict[str, Any]:
        """Return the final test metrics (of the last stage; per-fold mean with folds)."""
        if self.summary.get("cv"):
            return {k: v["mean"] for k, v in self.summary["cv"].items()}
        return dict(self.summary.get("test") or {})

    def load(
        self,
        checkpoint: str = "best",
        *,
        stage: str | None = None,
        fold: int | None = None,
        device: str = "cpu",
    ) -> LoadedModel:
        """Return the model with its weights and everything it was built with (transforms)."""
        from asklepios.inference import load_run_model

        return load_run_model(
            self.path,
            self.config,
            self.summary,
            self._host,
            checkpoint=checkpoint,
            stage=stage,
            fold=fold,
            device=device,
        )

    def model(
        self,
        checkpoint: str = "best",
        *,
        stage: str | None = None,
        fold: int | None = None,
        device: str = "cpu",
    ) -> nn.Module:
        """Return the run's model with the weights of ``checkpoint``, in eval mode.

        Args:
            checkpoint: ``"best"`` (the run's selected checkpoint), ``"last"`` or a ``.pt`` file.
            stage: which stage's model (default: the last stage; a test-only stage gives the
                model it tested).
            fold: the fold of a cross-validated run.
            device: where to put it.

        The model takes a batch dict (``{"image": N x C x H x W}``) and returns a dict with
        ``logits``; :meth:`predict` applies the run's eval transforms first.
        """
        return self.load(checkpoint, stage=stage, fold=fold, device=device).model

    def predict(
        self,
        data: Data = None,
        *,
        split: str = "test",
        checkpoint: str = "best",
        stage: str | None = None,
        fold: int | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        path_column: str = "path",
    ) -> Predictions:
        """Predict with the run's model; see :func:`asklepios.inference.predict` for ``data``.

        ``data`` is ``None`` (the run's own ``split``), a dataset config file, a CSV of image
        paths (in ``path_column``), a folder of images, a tensor or a torch dataset. Returns
        :class:`~asklepios.inference.Predictions` (``.labels``, ``.probabilities``,
        ``.to_dataframe()``, ``.write_csv(path)``).
        """
        from asklepios.inference import predict

        loaded = self.load(checkpoint, stage=stage, fold=fold, device=device)
        return predict(
            loaded,
            data,
            split=split,
            batch_size=batch_size,
            host=self._host,
            path_column=path_column,
        )

    def export(
        self,
        format: str = "torchscript",
        output: str | Path | None = None,
        *,
        checkpoint: str = "best",
        stage: str | None = None,
        fold: int | None = None,
    ) -> Exported:
        """Export the model (torchscript, onnx or safetensors) with its preprocessing JSON.

        See :func:`asklepios.export.export_model`; the export is verified by reloading it.
        """
        from asklepios.export import export_model

        loaded = self.load(checkpoint, stage=stage, fold=fold)
        return export_model(
            loaded, format, output or self.path / "export", run_dir=self.path, host=self._host
        )


def _without_absent_trackers(path: Path, host: PluginHost) -> dict[str, Any]:
    """Read a run's ``config.yaml`` without the settings of trackers no longer installed.

    A tracker's settings do not change the model or its predictions, so a run logged to MLflow
    opens where MLflow is not installed (or is disabled).
    """
    import yaml
    from asklepios_sdk.registration import SETTINGS_SECTIONS

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise RunOpenError(f"{path} is unreadable: {err}") from err
    if not isinstance(raw, dict):
        raise RunOpenError(f"{path} is not a config mapping")
    for section in SETTINGS_SECTIONS:
        entries = raw.get(section)
        if isinstance(entries, dict):
            usable = {i.id for i in host.plugins() if i.is_usable}
            raw[section] = {k: v for k, v in entries.items() if k in usable}
    return raw


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise RunOpenError(f"{path} is not valid JSON: {err}") from err
    return data if isinstance(data, dict) else {}


def _summary(path: Path) -> dict[str, Any]:
    """Return ``summary.json``, else the summaries of the stages that finished."""
    summary = _read_json(path / "summary.json")
    if summary:
        return summary
    stages = {
        file.parent.name: _read_json(file)
        for file in sorted((path / "checkpoints").glob("*/summary.json"))
    }
    return {"stages": stages} if stages else {}
