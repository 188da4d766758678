"""End to end: what the tracker writes reads back with TensorBoard's own event reader."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _runs import metrics, only_env, record, run_tiny
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow  # each test runs `asklepios run` once


def _events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_run_reads_back_with_the_event_reader(tmp_path):
    run_dir, _ = run_tiny(tmp_path, {"tensorboard": {"log_every_n_steps": 2}}, "tensorboard")
    events = _events(run_dir / "tensorboard")
    tags = events.Tags()
    rows = metrics(run_dir)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    (test,) = [r for r in rows if r["split"] == "test"]
    loss = events.Scalars("main/train/loss")
    assert [e.step for e in loss] == [0, 1]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("main/train/lr")] == pytest.approx(
        [r["lr"] for r in train], rel=1e-6
    )
    accuracy = events.Scalars("main/val/classification/accuracy")
    assert [e.value for e in accuracy] == pytest.approx(
        [r["classification/accuracy"] for r in val], rel=1e-6
    )
    steps = [e.step for e in events.Scalars("main/train_step/loss")]
    assert steps and all(step % 2 == 0 for step in steps)  # every 2 optimiser steps
    final = events.Scalars("test/classification/balanced_accuracy")
    assert final[0].value == pytest.approx(test["classification/balanced_accuracy"], rel=1e-6)
    assert "main/test/classification/ece" in tags["scalars"]
    images = set(tags["images"])
    assert {"plots/main/curves", "plots/main/classification_confusion_matrix"} <= images
    assert "config/text_summary" in tags["tensors"]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "core.digits" in text and "log_every_n_steps: 2" in text
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    entry = record(run_dir)["plugins_metadata"]["tensorboard"]
    assert entry["warnings"] == [] and entry["log_dir"] == str(run_dir / "tensorboard")


def test_unwritable_folder_is_a_warning_in_the_record(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    run_dir, stderr = run_tiny(
        tmp_path, {"tensorboard": {"log_dir": str(blocker / "tb")}}, "tensorboard"
    )
    assert "tensorboard tracking stopped" in stderr
    assert (run_dir / "summary.json").is_file()  # training went on
    (warning,) = record(run_dir)["plugins_metadata"]["tensorboard"]["warnings"]
    assert "opening the event writer" in warning and "--disable tensorboard" in warning


def test_disabled_by_settings_writes_nothing(tmp_path):
    run_dir, _ = run_tiny(tmp_path, {"tensorboard": {"enabled": False}}, "tensorboard")
    assert not (run_dir / "tensorboard").exists()
    assert "tensorboard" not in record(run_dir)["plugins_metadata"]


def test_validate_checks_the_settings(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\ndata: {dataset: {type: core.digits}}\nmodel: {backbone: {type: core.mlp}}\n"
        "tracking: {tensorboard: {log_every: 5}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "asklepios", "validate", str(config)],
        capture_output=True,
        text=True,
        env=only_env("tensorboard"),
    )
    assert result.returncode == 1
    assert "tracking.tensorboard.log_every" in result.stderr
    assert "log_every_n_steps" in result.stderr  # the suggestion
