"""End to end: what the tracker logs reads back with MLflow's own client."""

from __future__ import annotations

import pytest
from _runs import metrics, record, run_tiny
from mlflow import MlflowClient

pytestmark = pytest.mark.slow  # each test runs `asklepios run` once


@pytest.fixture(autouse=True)
def _file_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # reading the local store back


def test_run_reads_back_with_the_mlflow_client(tmp_path):
    store = tmp_path / "store"
    tracking = {"mlflow": {"tracking_uri": store.as_uri(), "log_checkpoint": True,
                           "experiment": "lt", "tags": {"lab": "derm"}}}  # fmt: skip
    run_dir, _ = run_tiny(tmp_path, tracking, "mlflow")
    entry = record(run_dir)["plugins_metadata"]["mlflow"]
    assert entry["warnings"] == [] and entry["tracking_uri"] == store.as_uri()
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("lt")
    assert experiment is not None and experiment.experiment_id == entry["experiment_id"]
    run = client.get_run(entry["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    params = run.data.params
    assert params["optimizer.lr"] == "0.001" and params["data.dataset.type"] == "core.digits"
    assert params["tracking.mlflow.log_checkpoint"] == "True"
    tags = run.data.tags
    assert tags["asklepios.plugin.core"] and tags["asklepios.seed"] == "0"
    assert tags["lab"] == "derm" and tags["asklepios.run_dir"] == str(run_dir)
    rows = metrics(run_dir)
    val = [r for r in rows if r["split"] == "val"]
    history = client.get_metric_history(run.info.run_id, "main/val/classification.accuracy")
    assert [m.step for m in history] == [0, 1]
    assert [m.value for m in history] == pytest.approx([r["classification/accuracy"] for r in val])
    (test,) = [r for r in rows if r["split"] == "test"]
    final = run.data.metrics["test/classification.balanced_accuracy"]
    assert final == pytest.approx(test["classification/balanced_accuracy"])
    assert "main/train/lr" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "config.yaml",
        "record.json",
        "summary.json",
        "metrics.jsonl",
        "metrics.csv",
    } <= artifacts
    assert {"plots", "checkpoints"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints/main")} == {
        "checkpoints/main/best.pt"
    }


def test_a_run_that_fails_ends_its_mlflow_run_as_failed(tmp_path):
    store = tmp_path / "store"
    tracking = {"mlflow": {"tracking_uri": store.as_uri()}}
    diverging = {"name": "sgd", "lr": 1e30}  # the loss turns non-finite, the run stops (exit 1)
    run_dir, stderr = run_tiny(tmp_path, tracking, "mlflow", exit_code=1, optimizer=diverging)
    assert "non-finite" in stderr
    entry = record(run_dir)["plugins_metadata"]["mlflow"]
    run = MlflowClient(tracking_uri=store.as_uri()).get_run(entry["run_id"])
    assert run.info.status == "FAILED"
    assert "non-finite" in run.data.tags["asklepios.error"]
    assert record(run_dir)["status"] == "failed"


def test_default_store_is_in_the_run_directory(tmp_path):
    run_dir, _ = run_tiny(tmp_path, {}, "mlflow")
    entry = record(run_dir)["plugins_metadata"]["mlflow"]
    assert entry["tracking_uri"] == (run_dir / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=entry["tracking_uri"])
    assert client.get_experiment_by_name("tiny") is not None
    assert client.get_run(entry["run_id"]).info.status == "FINISHED"


def test_server_down_is_a_warning_in_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    tracking = {"mlflow": {"tracking_uri": "http://127.0.0.1:9"}}  # nothing listens there
    run_dir, stderr = run_tiny(tmp_path, tracking, "mlflow")
    assert "mlflow tracking stopped" in stderr
    assert (run_dir / "summary.json").is_file()  # training went on
    (warning,) = record(run_dir)["plugins_metadata"]["mlflow"]["warnings"]
    assert "starting an MLflow run at http://127.0.0.1:9" in warning
