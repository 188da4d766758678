"""Experiment configs: the envelope model, loading (extends, --set) and two-phase validation.

Public API (stable):

* :func:`load_config` -- read a YAML/JSON file (with ``extends`` and ``--set`` overrides) and return
  a fully validated :class:`ExperimentConfig` with every component ``type`` resolved to its full id,
  every local path absolute and every component default filled in; raises
  :class:`~asklepios.errors.ConfigError` listing *every* problem (file, line, key path, component,
  plugin and version, suggestion). It imports no torch; the checks that build each stage's model
  skeleton are :mod:`asklepios.deep_checks`'s.
* :func:`load_config_with_origins` -- the same, with the :class:`Origins` of every key (the file
  and line, or ``--set``, it came from) for checks that report later.
* :func:`validate_config` -- the same for a mapping already in memory.
* :func:`stage_configs` -- ``[(StageConfig | None, ExperimentConfig)]``: the effective config each
  stage runs with (one ``(None, config)`` entry when there are no stages).
* :func:`dump_config` -- the resolved config as YAML, for the run record; loading it gives the same
  config back.
* :func:`config_schema` -- the composed JSON Schema (envelope + every installed component's params).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asklepios.config.checks import ConfigWarning, effective_stage, shadowed_overrides
from asklepios.config.loader import Origins, apply_overrides, merge, read_config
from asklepios.config.model import (
    ComponentSpec,
    DataConfig,
    ExperimentConfig,
    InitFrom,
    LoaderConfig,
    ModelConfig,
    MonitorConfig,
    OptimizerConfig,
    ScheduleConfig,
    StageConfig,
    TrainConfig,
    TransformsConfig,
)
from asklepios.config.schema import config_schema
from asklepios.config.validation import stage_overrides, validate_raw
from asklepios.errors import ConfigError, ConfigIssue
from asklepios.plugins import PluginHost, get_host

__all__ = [
    "ComponentSpec",
    "ConfigError",
    "ConfigIssue",
    "ConfigWarning",
    "DataConfig",
    "ExperimentConfig",
    "InitFrom",
    "LoaderConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimizerConfig",
    "Origins",
    "ScheduleConfig",
    "StageConfig",
    "TrainConfig",
    "TransformsConfig",
    "config_schema",
    "dump_config",
    "load_config",
    "load_config_with_origins",
    "stage_configs",
    "validate_config",
]


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    host: PluginHost | None = None,
    check_files: bool = True,
) -> ExperimentConfig:
    """Read, merge, override and validate a config file.

    Args:
        path: a ``.yaml``/``.yml`` or ``.json`` file; ``extends`` paths, ``weights.path`` and
            the local files and folders of components (``LocalFile``/``LocalDir`` params) are
            relative to the file that wrote them (``--set`` ones to the working directory) and
            are made absolute here.
        overrides: ``"a.b.c=value"`` strings applied after ``extends``; values are YAML scalars;
            a stage is addressed by index or name (``stages.classifier.train.epochs=1``). One
            that a stage's own setting shadows warns (:class:`ConfigWarning`).
        host: the plugin host to resolve components with (default: the process-wide one).
        check_files: check that local files and folders exist (off: resolve them only).

    Returns:
        The validated config; component ``type`` values are full ids.

    Raises:
        ConfigError: every problem of the config at once.
    """
    return load_config_with_origins(path, overrides, host=host, check_files=check_files)[0]


def load_config_with_origins(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    host: PluginHost | None = None,
    check_files: bool = True,
) -> tuple[ExperimentConfig, Origins]:
    """Do what :func:`load_config` does; also return where every key of the config came from."""
    raw, origins = read_config(path)
    applied = apply_overrides(raw, overrides, origins)
    for message in shadowed_overrides(raw, applied, origins):
        warnings.warn(message, ConfigWarning, stacklevel=3)
    config = validate_raw(
        raw, origins, host or get_host(), source=origins.root, check_files=check_files
    )
    return config, origins


def validate_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    host: PluginHost | None = None,
    check_files: bool = True,
) -> ExperimentConfig:
    """Validate an in-memory config mapping exactly as :func:`load_config` validates a file.

    ``extends`` needs a file to resolve paths against, so it is an error here; relative local
    paths are relative to the working directory. ``check_files=False`` skips checking that
    local files and folders exist (a finished run's config, opened after its data moved).
    """
    raw = merge({}, data)
    if "extends" in raw:
        raise ConfigError(
            [ConfigIssue(source, "extends", "'extends' is resolved only when loading a file")],
            source,
        )
    origins = Origins(source)
    return validate_raw(raw, origins, host or get_host(), source=source, check_files=check_files)


def _plain(config: ExperimentConfig, **kwargs: Any) -> dict[str, Any]:
    data = config.model_dump(**kwargs)
    _drop_empty_weights(data)
    return data


def _drop_empty_weights(node: Any) -> None:
    if isinstance(node, dict):
        if "type" in node and node.get("weights", 0) is None:
            del node["weights"]
        for value in node.values():
            _drop_empty_weights(value)
    elif isinstance(node, list):
        for value in node:
            _drop_empty_weights(value)


def stage_configs(config: ExperimentConfig) -> list[tuple[StageConfig | None, ExperimentConfig]]:
    """Return each stage with the effective config it runs with, in order.

    A stage's sections are merged key-wise over the base config (mappings merge; lists, scalars
    and components whose ``type`` changes are replaced); the effective configs have no stages.
    Without stages the result is ``[(None, config)]``.
    """
    if not config.stages:
        return [(None, config)]
    base = _plain(config, mode="python", exclude={"stages"})
    out: list[tuple[StageConfig | None, ExperimentConfig]] = []
    for stage in config.stages:
        effective = effective_stage(base, stage_overrides(stage))
        try:
            out.append((stage, ExperimentConfig.model_validate(effective)))
        except Exception as err:
            raise ConfigError(
                [ConfigIssue("<config>", f"stages[{stage.name}]", f"invalid stage: {err}")]
            ) from err
    return out


def dump_config(config: ExperimentConfig) -> str:
    """Return the resolved config as YAML (full ids, defaults filled in) for the run record."""
    import yaml

    return yaml.safe_dump(
        _plain(config, mode="json"), sort_keys=False, allow_unicode=True, default_flow_style=False
    )
