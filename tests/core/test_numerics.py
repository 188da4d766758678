"""Non-finite training losses: stop at the first one (default), skip its update, or warn."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import _fault_plugin
from _engine_helpers import make_config, only_run_dir, probe_host
from asklepios.build import build_experiment
from asklepios.config import validate_config
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.numerics import NonFiniteLossError
from asklepios.engine.run import run_experiment
from asklepios.sampling import count_train_batches


def _host() -> Any:
    host = probe_host()
    host.add_plugin(_fault_plugin, "fault")
    return host


def _run(tmp_path: Path, config: dict) -> dict:
    host = _host()
    return run_experiment(validate_config(config, host=host), host=host, quiet=True)


def _config(tmp_path: Path, **train: object) -> dict:
    config = make_config(tmp_path)
    config["train"] = {**config["train"], **train}
    return config


def _batches(config: dict) -> int:
    """Return the training batches per epoch of ``config`` (one process)."""
    host = _host()
    built = build_experiment(validate_config(config, host=host), host.registry)
    return count_train_batches(len(built.sampler), 32, drop_last=False, drop_single=True)


def _rows(tmp_path: Path) -> list[dict]:
    text = (only_run_dir(tmp_path) / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_a_huge_learning_rate_stops_the_run_at_the_first_non_finite_loss(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config["optimizer"] = {"name": "sgd", "lr": 1e30}
    with pytest.raises(NonFiniteLossError) as caught:
        _run(tmp_path, config)
    message = str(caught.value)
    assert message.startswith("stage main, epoch 1/2, step ")
    assert "non-finite training loss (non-finite: " in message
    assert "at learning rate main 1e+30" in message
    assert "no epoch of stage main finished, so it has no checkpoint yet" in message
    assert "--set train.nonfinite=skip_batch" in message
    run_dir = only_run_dir(tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed"
    assert record["error"].startswith("NonFiniteLossError: stage main, epoch 1/2")
    assert not (run_dir / "summary.json").exists()


def test_stop_keeps_the_last_good_checkpoint_and_names_the_terms(tmp_path: Path) -> None:
    config = _config(tmp_path)
    batches = _batches(config)
    config["loss"] = {"type": "fault.nonfinite_loss", "at_steps": [batches + 3], "value": "inf"}
    with pytest.raises(NonFiniteLossError) as caught:
        _run(tmp_path, config)
    message = str(caught.value)
    assert message.startswith(f"stage main, epoch 2/2, step {batches + 4} (batch 4 of {batches})")
    assert "(non-finite: ce, loss; ce=inf, reg=0, loss=inf)" in message
    checkpoints = only_run_dir(tmp_path) / "checkpoints" / "main"
    assert f"the last good checkpoint is {checkpoints / 'epoch-0000.pt'}" in message
    assert sorted(p.name for p in checkpoints.glob("epoch-*.pt")) == ["epoch-0000.pt"]
    state = load_checkpoint(checkpoints / "epoch-0000.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["split"] for r in _rows(tmp_path)] == ["train", "val"]  # epoch 2 left no line


def test_skip_batch_drops_the_update_and_counts_the_batches(tmp_path: Path) -> None:
    config = _config(tmp_path, nonfinite="skip_batch")
    config["loss"] = {"type": "fault.nonfinite_loss", "at_steps": [0, 5, 25]}
    summary = _run(tmp_path, config)
    train = [r for r in _rows(tmp_path) if r["split"] == "train"]
    assert [r.get("nonfinite_batches") for r in train] == [2, 1]
    assert all(r["loss"] is not None and r["ce"] is not None for r in train)
    assert train[1]["step"] == 2 * _batches(
        config
    )  # skipped batches still advance the step and the schedule
    last = load_checkpoint(only_run_dir(tmp_path) / "checkpoints" / "main" / "last.pt")
    assert all(torch.isfinite(v.float()).all() for v in last["model"].values())
    assert summary["test"]["classification/accuracy"] > 0.5


def test_warn_trains_on_and_logs_null_losses(tmp_path: Path) -> None:
    config = _config(tmp_path, nonfinite="warn", epochs=1)
    config["loss"] = {"type": "fault.nonfinite_loss", "at_steps": [16], "value": "inf"}
    _run(tmp_path, config)
    train = _rows(tmp_path)[0]
    # the infinite loss reached the weights, so every later batch is non-finite too
    assert train["nonfinite_batches"] == _batches(config) - 16
    assert train["loss"] is None
