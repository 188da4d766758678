"""The hooks in process, with a stand-in run: rank 0 only, failures become warnings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from asklepios_sdk.tracking import TrackerWarning
from asklepios_tensorboard import hooks, tracker
from asklepios_tensorboard.params import TensorBoardParams


def _run(tmp_path, is_main=True, **settings):
    config = SimpleNamespace(tracking={"tensorboard": settings}, name="t")
    return SimpleNamespace(
        config=config, output_dir=str(tmp_path), is_main=is_main, stage="main", epoch=0,
        optimizers={}, global_step=0,
    )  # fmt: skip


def test_other_ranks_write_nothing(tmp_path):
    run = _run(tmp_path, is_main=False)
    hooks.run_start(run)
    hooks.epoch_end(run, 0, {"loss": 1.0})
    hooks.run_end(run, {"test": {}})
    assert hooks.record_metadata(run) is None
    assert not (tmp_path / "tensorboard").exists()


def test_failure_warns_once_and_stops_the_session(tmp_path):
    (tmp_path / "blocked").write_text("")
    run = _run(tmp_path, log_dir="blocked/tb")
    with pytest.warns(TrackerWarning, match="opening the event writer"):
        hooks.run_start(run)
    assert tracker.SESSIONS.get(run.output_dir) is None  # stopped: later hooks do nothing
    hooks.epoch_end(run, 0, {"loss": 1.0})
    hooks.run_end(run, {"test": {"classification/accuracy": 0.5}})
    entry = hooks.record_metadata(run)
    assert entry is not None and len(entry["warnings"]) == 1


def test_step_scalars_every_n_steps_and_relative_log_dir(tmp_path):
    run = _run(tmp_path, log_every_n_steps=3, log_dir="logs")
    hooks.run_start(run)
    for step in range(1, 8):
        hooks.step_end(run, step, {"loss": float(step), "ce": float("nan")})
    hooks.run_end(run, {"test": {"acc": 0.5, "matrix": [[1]]}})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    assert [e.step for e in events.Scalars("main/train_step/loss")] == [3, 6]
    assert "main/train_step/ce" not in events.Tags()["scalars"]  # NaN left out
    assert hooks.record_metadata(run)["log_dir"] == str(tmp_path / "logs")


def test_settings_defaults_and_registration():
    assert TensorBoardParams().model_dump() == {
        "enabled": True, "log_dir": None, "log_every_n_steps": 1, "images": True,
        "hparams": True, "flush_secs": 30,
    }  # fmt: skip
    seen = []
    hooks.register_settings(lambda section, params: seen.append((section, params)))
    assert seen == [("tracking", TensorBoardParams)]
