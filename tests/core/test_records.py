"""Run records: what they hold, `record check` differences, and the run/report/record CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from asklepios.cli import main
from asklepios.records import check_record, config_sha256, read_record, write_record

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, only_run_dir, probe_host, write_config


def _record(tmp_path: Path) -> tuple[Path, object]:
    host = probe_host()
    write_record(
        tmp_path,
        "name: x\n",
        host=host,
        component_ids=["core.digits", "probe.epoch_ce", "core.mlp"],
        seed=5,
        device="cpu",
        world_size=1,
        argv=["asklepios", "run", "x.yaml", "--set", "seed=5"],
        weights={"main/model.backbone": {"sha256": "ab" * 32}},
    )
    return tmp_path, host


def test_record_holds_versions_plugins_seeds_and_command(tmp_path: Path) -> None:
    run_dir, _ = _record(tmp_path)
    record = read_record(run_dir)
    assert record["config_sha256"] == config_sha256("name: x\n")
    env = record["environment"]
    assert {"asklepios", "asklepios_sdk", "python", "torch", "cuda"} <= set(env)
    assert [p["id"] for p in record["plugins"]] == ["core", "probe"]
    core = record["plugins"][0]
    assert core["distribution"] == "asklepios" and core["version"]
    assert record["seed"] == 5 and record["device"] == "cpu" and record["world_size"] == 1
    assert record["weights"]["main/model.backbone"]["sha256"] == "ab" * 32
    assert (run_dir / "command.txt").read_text() == "asklepios run x.yaml --set seed=5\n"
    assert (run_dir / "config.yaml").read_text() == "name: x\n"


def test_check_reports_each_difference(tmp_path: Path) -> None:
    run_dir, host = _record(tmp_path)
    assert check_record(run_dir, host) == []
    record = json.loads((run_dir / "record.json").read_text())
    record["environment"]["torch"] = "1.0.0"
    record["plugins"][1]["version"] = "0.0.1"
    record["plugins"].append({"id": "gone", "distribution": "asklepios-gone", "version": "2.0"})
    (run_dir / "record.json").write_text(json.dumps(record))
    (run_dir / "config.yaml").write_text("name: y\n")
    diffs = "\n".join(check_record(run_dir, host))
    assert "config.yaml changed" in diffs
    assert "torch: recorded 1.0.0" in diffs
    assert "plugin probe version: recorded 0.0.1" in diffs
    assert "pip install asklepios-gone==2.0" in diffs


def test_missing_record_is_a_clear_error(tmp_path: Path) -> None:
    from asklepios.records import RecordError

    with pytest.raises(RecordError, match=r"is .* an asklepios run directory"):
        read_record(tmp_path)


def test_cli_run_report_and_record_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_config(tmp_path)
    config["train"]["epochs"] = 1
    path = write_config(tmp_path, config)
    assert main(["run", str(path), "--set", "train.log_every=5", "--device", "cpu"]) == 0
    run_dir = only_run_dir(tmp_path)
    out = capsys.readouterr().out
    assert "classification/balanced_accuracy" in out and f"{run_dir / 'plots'}" in out
    (run_dir / "plots" / "main" / "curves.png").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "plots" / "main" / "curves.png").is_file()
    assert main(["record", "check", str(run_dir)]) == 0
    assert "match the record" in capsys.readouterr().out
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text() + "# edited\n")
    assert main(["record", "check", str(run_dir)]) == 1
    assert main(["report", str(tmp_path)]) == 1  # not a run directory: one-line error
    assert "summary.json does not exist" in capsys.readouterr().err
