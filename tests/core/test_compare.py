"""Compare runs: headline metrics, mean ± sd over folds, config and record differences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from asklepios.compare import (
    CompareError,
    Value,
    compare_runs,
    expand_runs,
    plot_comparison,
    print_comparison,
)
from rich.console import Console

TEST = {
    "loss": 0.5,
    "classification/accuracy": 0.8,
    "classification/ece": 0.05,
    "classification/confusion_matrix": [[1, 0], [0, 1]],
    "shots/many": 0.9,
}


def _write_run(
    root: Path,
    name: str,
    *,
    seed: int = 0,
    lr: float = 0.001,
    test: dict[str, Any] | None = None,
    headline: dict[str, list[str]] | None = None,
    cv: dict[str, Any] | None = None,
    longtail: str = "0.2.0",
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    stage: dict[str, Any] = {"test": test or TEST}
    if headline is not None:
        stage["headline"] = headline
    summary: dict[str, Any] = {"stages": {"main": stage}, "test": test or TEST}
    if cv is not None:
        summary["cv"] = cv
    (run / "summary.json").write_text(json.dumps(summary))
    config = {"name": "lt", "seed": seed, "output_dir": str(root), "optimizer": {"lr": lr}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    record = {
        "environment": {"asklepios": "0.2.0", "torch": "2.14.1"},
        "plugins": [{"id": "core", "version": "0.2.0"}, {"id": "longtail", "version": longtail}],
        "seed": seed,
        "device": "cpu",
        "world_size": 1,
    }
    (run / "record.json").write_text(json.dumps(record))
    return run


def test_headline_keys_by_default_and_differences(tmp_path):
    headline = {"classification": ["accuracy"], "shots": []}
    a = _write_run(tmp_path, "lt-a", seed=0, headline=headline)
    b = _write_run(tmp_path, "lt-b", seed=1, lr=0.01, longtail="0.2.1", headline=headline,
                   test={**TEST, "classification/accuracy": 0.7})  # fmt: skip
    comparison = compare_runs([a, b])
    assert comparison.metrics == ["classification/accuracy", "shots/many"]
    assert comparison.values["lt-b"]["classification/accuracy"] == Value(0.7)
    assert comparison.config_diff == {"seed": [0, 1], "optimizer.lr": [0.001, 0.01]}
    assert comparison.record_diff == {"seed": [0, 1], "plugin longtail": ["0.2.0", "0.2.1"]}


def test_runs_without_headline_patterns_show_every_scalar_test_metric(tmp_path):
    comparison = compare_runs([_write_run(tmp_path, "old")])
    assert comparison.metrics == ["classification/accuracy", "classification/ece", "shots/many"]
    assert comparison.config_diff == {} and comparison.record_diff == {}


def test_folds_are_mean_and_sd(tmp_path):
    cv = {"classification/accuracy": {"mean": 0.8, "std": 0.02, "values": [0.78, 0.8, 0.82]}}
    run = _write_run(tmp_path, "cv", cv=cv)
    comparison = compare_runs([run], ["classification/accuracy"])
    value = comparison.values["cv"]["classification/accuracy"]
    assert value == Value(0.8, 0.02, 3) and value.format() == "0.8000 ± 0.0200 (3)"
    assert Value(None).format() == "-"


def test_metric_choice_and_unknown_metric(tmp_path):
    run = _write_run(tmp_path, "a")
    assert compare_runs([run], ["loss"]).metrics == ["loss"]
    with pytest.raises(CompareError, match=r"\['acc'\] are in none of the runs"):
        compare_runs([run], ["acc"])


def test_any_stage_test_metric_as_stage_colon_key(tmp_path):
    run = _write_run(tmp_path, "a")
    summary = json.loads((run / "summary.json").read_text())
    summary["stages"] = {
        "rep": {"test": {**TEST, "classification/accuracy": 0.6}},
        **summary["stages"],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    comparison = compare_runs([run], ["rep:classification/accuracy", "classification/accuracy"])
    assert comparison.values["a"] == {
        "rep:classification/accuracy": Value(0.6),
        "classification/accuracy": Value(0.8),
    }
    assert ":" not in "".join(compare_runs([run]).metrics)  # defaults: the final headline
    with pytest.raises(
        CompareError, match=r"as '<stage>:<key>' the test metrics of \['main', 'rep'\]"
    ):
        compare_runs([run], ["rep:nothing"])


def test_globs_expand_to_finished_runs_in_order(tmp_path):
    b, a = _write_run(tmp_path, "lt-b"), _write_run(tmp_path, "lt-a")
    (tmp_path / "lt-unfinished").mkdir()
    assert expand_runs([str(tmp_path / "lt-*")]) == [a, b]
    assert expand_runs([b, str(tmp_path / "lt-*")]) == [b, a]
    with pytest.raises(CompareError, match="not a finished run directory"):
        expand_runs([tmp_path / "lt-unfinished"])
    with pytest.raises(CompareError, match="no run directory matches"):
        expand_runs([str(tmp_path / "zz-*")])


def test_same_names_in_different_folders_get_full_labels(tmp_path):
    a = _write_run(tmp_path / "x", "run")
    b = _write_run(tmp_path / "y", "run")
    assert compare_runs([a, b]).labels == [str(a), str(b)]


def test_table_plot_and_dataframe(tmp_path):
    runs = [_write_run(tmp_path, f"r{i}", seed=i) for i in range(3)]
    comparison = compare_runs(runs)
    console = Console(record=True, width=200)
    print_comparison(comparison, console)
    text = console.export_text()
    assert "final test metrics" in text and "r2" in text and "0.8000" in text
    assert "config differences" in text and "record differences" in text
    png = plot_comparison(comparison, tmp_path / "bars.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frame = comparison.to_dataframe()
    assert list(frame.index) == ["r0", "r1", "r2"]
    assert comparison.to_dict()["metrics"]["r1"]["shots/many"]["mean"] == 0.9


def test_cli_json_and_plot(tmp_path):
    for i in range(2):
        _write_run(tmp_path, f"lt-{i}", seed=i)
    env = {**os.environ, "ASKLEPIOS_DISABLE_PLUGINS": "tensorboard,mlflow"}
    command = [sys.executable, "-m", "asklepios", "compare", str(tmp_path / "lt-*"), "--json"]
    command += ["--plot", str(tmp_path / "c.png")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config_diff"] == {"seed": [0, 1]} and (tmp_path / "c.png").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "asklepios", "compare", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 1 and "not a finished run directory" in missing.stderr


def test_a_key_one_run_lacks_is_absent_not_none(tmp_path):
    a = _write_run(tmp_path, "a")
    b = _write_run(tmp_path, "b")
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["loss"] = {"type": "longtail.focal", "gamma": None}
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    comparison = compare_runs([a, b])
    assert [repr(v) for v in comparison.config_diff["loss.type"]] == ["-", "'longtail.focal'"]
    assert comparison.to_dict()["config_diff"]["loss.gamma"] == [None, None]
    console = Console(record=True, width=200)
    print_comparison(comparison, console)
    assert "│ loss.gamma │ -" in console.export_text()
