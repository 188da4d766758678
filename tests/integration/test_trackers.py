"""The installed trackers under a 2-rank torchrun: rank 0 alone logs, once; the record says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

TRACKERS = {"tensorboard", "mlflow"}


def _installed() -> set[str]:
    return {ep.name for ep in entry_points(group="asklepios.plugins")}


@pytest.mark.skipif(not _installed() >= TRACKERS, reason="the tracker plugins are not installed")
def test_two_ranks_log_once_from_rank_zero(tmp_path, monkeypatch):
    config = {
        "name": "ddp",
        "output_dir": str(tmp_path / "runs"),
        "data": {"dataset": {"type": "core.digits", "imbalance_ratio": 2, "test_per_class": 10}},
        "model": {"backbone": {"type": "core.mlp", "hidden": [16]}},
        "train": {"epochs": 2, "device": "cpu"},
        "tracking": {"mlflow": {"experiment": "ddp"}},
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    others = sorted(_installed() - TRACKERS)  # only the trackers take part
    env = {**os.environ, "ASKLEPIOS_DISABLE_PLUGINS": ",".join(others)}
    port = str(29600 + os.getpid() % 1000)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", port, "-m", "asklepios", "run", str(path), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["world_size"] == 2
    metadata = record["plugins_metadata"]
    assert metadata["tensorboard"]["warnings"] == [] and metadata["mlflow"]["warnings"] == []
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading the local store back
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=metadata["mlflow"]["tracking_uri"])
    experiment = client.get_experiment_by_name("ddp")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [metadata["mlflow"]["run_id"]]
    history = client.get_metric_history(runs[0].info.run_id, "main/train/loss")
    assert [m.step for m in history] == [0, 1]  # one value per epoch, not one per rank
    assert Path(run_dir / "summary.json").is_file()
