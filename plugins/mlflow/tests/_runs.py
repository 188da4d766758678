"""Run a tiny experiment through the installed ``asklepios`` command, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {
        "dataset": {"type": "core.digits", "imbalance_ratio": 2, "test_per_class": 10},
        "loader": {"batch_size": 128},
    },
    "model": {"backbone": {"type": "core.mlp", "hidden": [16]}},
    "evaluators": [{"type": "core.classification"}],
    "train": {"epochs": 2, "device": "cpu"},
}


def only_env(plugin_id: str) -> dict[str, str]:
    """Return an environment in which every installed plugin but ``plugin_id`` is disabled.

    The tracker is tested on its own: other plugins' lifecycle hooks stay out of its runs.
    """
    others = {ep.name for ep in entry_points(group="asklepios.plugins")} - {plugin_id}
    return {**os.environ, "ASKLEPIOS_DISABLE_PLUGINS": ",".join(sorted(others))}


def run_tiny(
    tmp: Path, tracking: dict[str, Any], plugin_id: str, *, exit_code: int = 0, **changes: Any
) -> tuple[Path, str]:
    """Run the tiny config (with ``changes``) and ``tracking``; return the run dir and stderr."""
    config = {**TINY, **changes, "output_dir": str(tmp / "runs"), "tracking": tracking}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    env = only_env(plugin_id)
    result = subprocess.run(
        [sys.executable, "-m", "asklepios", "run", str(path), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == exit_code, result.stderr[-3000:]
    (run_dir,) = (tmp / "runs").iterdir()
    return run_dir, result.stderr


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def record(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "record.json").read_text())
