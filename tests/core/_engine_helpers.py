"""Small configs and runners shared by the engine tests (tiny MLP on the bundled digits)."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "data": {
        "dataset": {"type": "core.digits", "imbalance_ratio": 5, "test_per_class": 20},
        "loader": {"batch_size": 32},
    },
    "model": {"backbone": {"type": "core.mlp", "hidden": [32], "dropout": 0.1}},
    "loss": {"type": "core.cross_entropy"},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "evaluators": [{"type": "core.classification"}],
    "train": {
        "epochs": 2,
        "device": "cpu",
        "monitor": {"metric": "classification/balanced_accuracy"},
    },
}


def make_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """Return a copy of :data:`BASE` writing into ``tmp_path``, with top-level ``changes``."""
    config = copy.deepcopy(BASE)
    config["output_dir"] = str(tmp_path / "runs")
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


RUNNER = """
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "core"))
import _probe_plugin
from asklepios.plugins import PluginHost, set_host
host = PluginHost(discover=False)
host.add_plugin(_probe_plugin, "probe")
set_host(host)
from asklepios.cli import run_command
resume = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
summary = run_command(None if resume else sys.argv[1], sys.argv[3:], resume=resume, quiet=True)
out = os.environ.get("SUMMARY_OUT")
if out:
    rank = os.environ.get("RANK", "0")
    with open(f"{out}-{rank}.json", "w") as handle:
        json.dump(summary, handle)
"""


def run_subprocess(
    args: list[str], env_extra: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c RUNNER CONFIG RESUME_DIR|- [--set ...]`` with the probe plugin installed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


PLUGIN_RUNNER = """
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "core"))
import {module}
from asklepios.plugins import PluginHost, set_host
host = PluginHost(discover=False)
host.add_plugin({module}, "{plugin_id}")
set_host(host)
from asklepios.cli import run_command
config, resume = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
summary = run_command(None if resume else config, [], resume=resume, quiet=True)
with open(os.environ["SUMMARY_OUT"] + "-" + os.environ.get("RANK", "0") + ".json", "w") as f:
    json.dump(summary, f)
"""


def free_port() -> int:
    """Return a free local TCP port (for torchrun's ``--master_port``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_with_plugin(
    tmp_path: Path, module: str, plugin_id: str, args: list[str], out: str, ranks: int = 1
) -> subprocess.CompletedProcess[str]:
    """Run ``CONFIG [RESUME_DIR]`` with the in-memory plugin ``module`` on ``ranks`` processes.

    Each rank writes the summary it returns to ``<tmp_path>/<out>-<rank>.json``.
    """
    runner = tmp_path / f"runner_{module}.py"
    runner.write_text(PLUGIN_RUNNER.format(module=module, plugin_id=plugin_id))
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks)]
        launcher += ["--master_port", str(free_port())]
    return subprocess.run(
        [*launcher, str(runner), *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "SUMMARY_OUT": str(tmp_path / out)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def only_run_dir(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def probe_host() -> Any:
    """Return an in-memory host with the built-ins and the ``probe`` test plugin."""
    import _probe_plugin
    from asklepios.plugins import PluginHost

    _probe_plugin.CALLS.clear()
    host = PluginHost(discover=False)
    host.add_plugin(_probe_plugin, "probe")
    return host
