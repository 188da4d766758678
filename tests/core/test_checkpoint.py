"""Atomic checkpoints, weights-only loading, corrupt-file errors and fallback, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from asklepios.engine.checkpoint import (
    CheckpointError,
    epoch_checkpoints,
    load_checkpoint,
    load_latest,
    prune_epoch_checkpoints,
    save_checkpoint,
)
from asklepios.engine.seeding import get_rng_state, set_rng_state
from asklepios_sdk import AsklepiosWarning

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import REPO, RUNNER, make_config, only_run_dir, run_subprocess, write_config


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "epoch": int(value), "rng": get_rng_state()}


def test_save_is_atomic_and_loads_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(_state(1.0), tmp_path / "ck" / "epoch-0001.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch-0001.pt"]  # no temp left
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(3))


def test_rng_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    path = save_checkpoint(_state(0.0), tmp_path / "a.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": Path("/etc")}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint_names_the_file_and_falls_back(tmp_path: Path) -> None:
    for epoch in range(3):
        save_checkpoint(_state(float(epoch)), tmp_path / f"epoch-{epoch:04d}.pt")
    newest = tmp_path / "epoch-0002.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"epoch-0002\.pt.*corrupt or truncated"):
        load_checkpoint(newest)
    with pytest.warns(AsklepiosWarning, match="epoch-0002.pt"):
        path, state = load_latest(tmp_path)
    assert path.name == "epoch-0001.pt" and state["epoch"] == 1


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for epoch in range(4):
        save_checkpoint(_state(float(epoch)), tmp_path / f"epoch-{epoch:04d}.pt")
    prune_epoch_checkpoints(tmp_path, keep=2)
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch-0003.pt", "epoch-0002.pt"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Kill a run in the middle of epoch 2 (of 3) with SIGKILL, resume it, compare exactly."""
    config = make_config(tmp_path / "a", loss={"type": "probe.epoch_ce"})
    config["train"]["epochs"] = 3
    config["data"]["transforms"] = {"train": [{"type": "core.rotation", "degrees": 10}]}
    path = write_config(tmp_path, config)
    done = run_subprocess([str(path), "-"])
    assert done.returncode == 0, done.stderr
    reference = only_run_dir(tmp_path / "a")

    config["output_dir"] = str(tmp_path / "b" / "runs")
    path_b = write_config(tmp_path, config, "b.json")
    marker = tmp_path / "in-epoch-2"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PROBE_MARKER": str(marker),
        "PROBE_MARKER_EPOCH": "1",
        "PROBE_STEP_DELAY": "0.01",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(path_b), "-"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 180
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = only_run_dir(tmp_path / "b")
    assert not (interrupted / "summary.json").exists()
    assert [p.name for p in epoch_checkpoints(interrupted / "checkpoints" / "main")] == [
        "epoch-0000.pt"
    ]
    resumed = run_subprocess(["-", str(interrupted)])
    assert resumed.returncode == 0, resumed.stderr

    ref = json.loads((reference / "summary.json").read_text())
    got = json.loads((interrupted / "summary.json").read_text())
    assert got["test"] == ref["test"]  # exact equality of every final metric
    assert got["stages"]["main"]["val"] == ref["stages"]["main"]["val"]
    assert (interrupted / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
