"""The hooks in process, with a stand-in run: rank 0 only, failures become warnings."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from asklepios_mlflow import hooks, tracker
from asklepios_mlflow.params import MLflowParams
from asklepios_sdk.tracking import TrackerWarning


def _run(tmp_path, is_main=True, **settings):
    config = SimpleNamespace(tracking={"mlflow": settings}, name="t")
    return SimpleNamespace(
        config=config, output_dir=str(tmp_path), is_main=is_main, stage="main", epoch=0,
        optimizers={}, global_step=0,
    )  # fmt: skip


def test_other_ranks_log_nothing(tmp_path):
    run = _run(tmp_path, is_main=False)
    hooks.run_start(run)
    hooks.epoch_end(run, 0, {"loss": 1.0})
    hooks.run_end(run, {"test": {}})
    assert hooks.record_metadata(run) is None
    assert not (tmp_path / "mlruns").exists()


def test_unwritable_store_warns_once_and_stops(tmp_path):
    (tmp_path / "blocked").write_text("")
    run = _run(tmp_path, tracking_uri=(tmp_path / "blocked" / "store").as_uri())
    with pytest.warns(TrackerWarning, match="starting an MLflow run"):
        hooks.run_start(run)
    assert tracker.SESSIONS.get(run.output_dir) is None
    hooks.evaluation_end(run, "val", {"acc": 1.0})
    hooks.run_end(run, {"test": {"acc": 0.5}})
    assert len(hooks.record_metadata(run)["warnings"]) == 1


def test_file_store_switch_is_scoped(tmp_path, monkeypatch):
    monkeypatch.delenv(tracker.FILE_STORE_ENV, raising=False)
    with tracker.allow_file_store(tmp_path.as_uri()):
        assert os.environ[tracker.FILE_STORE_ENV] == "true"
    assert tracker.FILE_STORE_ENV not in os.environ
    with tracker.allow_file_store("http://mlflow.lab:5000"):
        assert tracker.FILE_STORE_ENV not in os.environ


def test_metric_keys_and_checkpoint_choice(tmp_path):
    assert tracker.metric_key("main/val/", "acc@1 (top)") == "main/val/acc_1 _top_"
    both = [tracker.metric_key("t/", k) for k in ("model/acc", "model/acc/mean")]
    assert both == ["t/model.acc", "t/model.acc.mean"]  # no name is a folder of another
    stage_dir = tmp_path / "checkpoints" / "fit"
    stage_dir.mkdir(parents=True)
    (stage_dir / "best.pt").write_bytes(b"x")
    summary = {"stages": {"fit": {"selected_checkpoint": "best"}, "check": {}}}
    assert tracker.selected_checkpoint(tmp_path, summary) == stage_dir / "best.pt"


def test_settings_defaults_and_registration():
    assert MLflowParams().tracking_uri is None and MLflowParams().enabled
    seen = []
    hooks.register_settings(lambda section, params: seen.append((section, params)))
    assert seen == [("tracking", MLflowParams)]
