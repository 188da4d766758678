"""The Python API: lazy re-exports, load_config/validate/run, Run.open/metrics/model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import asklepios
import pytest
import torch
from _api_helpers import builtin_host, tiny_config, tiny_run
from asklepios.api import Run, RunOpenError
from asklepios.errors import ConfigError, ConfigIssue

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory)


def test_import_asklepios_is_torch_free_and_lazy():
    code = (
        "import sys, asklepios\n"
        "assert 'asklepios.api' not in sys.modules\n"
        "asklepios.load_config, asklepios.Run, asklepios.compare\n"
        "assert 'torch' not in sys.modules, 'the API imported torch'\n"
        "print(sorted(set(dir(asklepios)) & {'Run', 'run', 'load_config', 'validate'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['Run', 'load_config', 'run', 'validate']"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        asklepios.nope  # noqa: B018


def test_load_config_from_a_mapping_with_overrides(tmp_path):
    overrides = ["train.epochs=1", "stages.check.train.epochs=0"]
    config = asklepios.load_config(tiny_config(tmp_path), overrides, host=builtin_host())
    assert config.train.epochs == 1
    assert config.model.backbone.type == "core.mlp"
    assert config.model.backbone.params["dropout"] == 0.0  # defaults filled in


def test_load_config_from_a_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(tiny_config(tmp_path)))
    config = asklepios.load_config(path, ["seed=7"], host=builtin_host())
    assert config.seed == 7


def test_validate_returns_every_problem_instead_of_raising(tmp_path):
    good = tiny_config(tmp_path)
    assert asklepios.validate(good, host=builtin_host()) == []
    bad = tiny_config(tmp_path, optimizer={"name": "sgd", "lr": -1})
    bad["model"]["backbone"]["hiden"] = [3]
    issues = asklepios.validate(bad, host=builtin_host())
    assert all(isinstance(i, ConfigIssue) for i in issues)
    assert {i.path for i in issues} == {"optimizer.lr", "model.backbone.hiden"}
    with pytest.raises(ConfigError):
        asklepios.load_config(bad, host=builtin_host())


@pytest.mark.slow
def test_run_writes_the_given_directory_and_opens_it(run_dir):
    run = Run.open(run_dir, host=builtin_host())
    assert run.path == run_dir and repr(run) == f"Run({str(run_dir)!r})"
    assert run.config.name == "tiny" and run.record["seed"] == 1
    assert set(run.summary["stages"]) == {"fit", "check"}
    assert run.test_metrics == run.summary["test"]
    metrics = run.metrics
    assert list(metrics["split"].unique()) == ["train", "val", "test"]
    assert {"stage", "epoch", "loss", "classification/accuracy"} <= set(metrics.columns)


@pytest.mark.slow
def test_metrics_are_lists_of_dicts_without_pandas(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = Run.open(run_dir, host=builtin_host()).metrics
    assert isinstance(rows, list) and rows[0]["split"] == "train"


@pytest.mark.slow
def test_model_reproduces_the_run_test_accuracy(run_dir):
    run = Run.open(run_dir, host=builtin_host())
    model = run.model()
    assert not model.training
    test = run.load().built.eval_splits["test"]
    batch = torch.utils.data.default_collate([test[i] for i in range(len(test))])
    with torch.no_grad():
        predicted = model(batch)["logits"].argmax(1)
    accuracy = (predicted == batch["label"]).double().mean().item()
    assert accuracy == pytest.approx(run.summary["test"]["classification/accuracy"], abs=1e-6)


def test_run_dir_must_be_new(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    config = tiny_config(tmp_path, stages=[])
    with pytest.raises(Exception, match="exists and is not empty"):
        asklepios.run(config, tmp_path / "taken", host=builtin_host())


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunOpenError, match=r"no config\.yaml"):
        Run.open(tmp_path)


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## In Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    assert blocks, "README's 'In Python' section has no python example"
    return blocks[0]


@pytest.mark.slow
def test_readme_api_example_runs(tmp_path):
    """The README's notebook-style example runs as written (in a fresh folder)."""
    script = tmp_path / "example.py"
    script.write_text(_readme_example())
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "ASKLEPIOS_DISABLE_PLUGINS": "tensorboard,mlflow"},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "predictions.csv").is_file()


@pytest.mark.slow
def test_open_ignores_settings_of_trackers_that_are_not_installed(run_dir, tmp_path):
    import shutil

    import yaml

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["tracking"] = {"gone": {"uri": "http://x"}}
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert Run.open(copy, host=builtin_host()).config.tracking == {}
