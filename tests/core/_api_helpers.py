"""A tiny finished run shared by the API, predict and export tests (made once per session)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from asklepios.plugins import PluginHost

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 1,
    "data": {
        "dataset": {"type": "core.digits", "imbalance_ratio": 2, "test_per_class": 10},
        "transforms": {"eval": [{"type": "core.normalize", "mean": [0.3], "std": [0.4]}]},
        "loader": {"batch_size": 64, "eval_batch_size": 37},
    },
    "model": {"backbone": {"type": "core.mlp", "hidden": [16]}},
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "evaluators": [{"type": "core.classification"}],
    "train": {"epochs": 2, "device": "cpu"},
    "stages": [
        {"name": "fit"},
        {"name": "check", "init_from": {"stage": "fit"}, "train": {"epochs": 0}},
    ],
}
"""Two stages: 'fit' trains 2 epochs; 'check' trains none and tests fit's best checkpoint."""

_RUNS: dict[str, Path] = {}


def builtin_host() -> PluginHost:
    """Return a host with the core's built-ins only (no installed plugin, so no tracker)."""
    return PluginHost(discover=False, strict=True)


def tiny_config(output_dir: Path, **changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(TINY)
    config["output_dir"] = str(output_dir)
    config.update(changes)
    return config


def tiny_run(tmp_path_factory: Any) -> Path:
    """Return the directory of the tiny run, training it on first use in this session."""
    if "tiny" not in _RUNS:
        import asklepios

        root = tmp_path_factory.mktemp("api-runs")
        run = asklepios.run(tiny_config(root), root / "tiny", host=builtin_host())
        _RUNS["tiny"] = run.path
    return _RUNS["tiny"]
