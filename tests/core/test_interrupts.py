"""Nothing is lost on any interrupt: SIGKILL at every boundary, resume, compare exactly.

A three-stage run (training, decoupled re-training, an evaluation-only stage whose eval
transform is random) is killed at each boundary in turn, each resume running until the next
kill point, and the last resume finishing it. ``summary.json`` (less ``run_dir`` and
``wall_seconds``) and ``metrics.jsonl`` must then equal those of an uninterrupted run, byte for
byte on CPU. The kills come from the ``fault`` test plugin's lifecycle hooks; the runs are real
``asklepios run`` processes (forked from a preloaded forkserver, see ``_kill_harness``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, only_run_dir, probe_host, write_config
from _kill_harness import ForkedCLI
from asklepios.config import validate_config
from asklepios.engine.run import RunError
from asklepios.errors import ConfigError

KILLED = -9

# (kill point, what the run directory shows right after the kill)
KILL_POINTS = [
    ("epoch_start:rep:1", "after the first epoch checkpoint"),
    ("evaluation_end:rep:val:1", "during validation, before the epoch's checkpoint"),
    ("evaluation_end:rep:test", "during the final test, after the last epoch checkpoint"),
    ("stage_end:rep", "between stages"),
    ("epoch_start:cls:1", "after an epoch checkpoint of the second stage"),
    ("evaluation_end:cls:test", "during the second stage's final test"),
    ("stage_start:robust", "as the evaluation-only stage starts"),
    ("evaluation_end:robust:test", "during the evaluation-only stage's test"),
    ("stage_end:robust", "after the last stage, before summary.json is written"),
    ("run_end", "while the run's files are written (a half-written temporary file is left)"),
]


def _config(tmp_path: Path, sub: str) -> dict:
    config = make_config(tmp_path / sub)
    config["data"]["dataset"] = {
        "type": "core.digits",
        "imbalance_ratio": 5,
        "test_per_class": 10,
        "val_per_class": 10,
    }
    config["data"]["transforms"] = {"train": [{"type": "core.rotation", "degrees": 10}]}
    config["stages"] = [
        {"name": "rep"},
        {
            "name": "cls",
            "init_from": {"stage": "rep", "checkpoint": "best"},
            "freeze": ["body.*"],
            "optimizer": {"lr": 0.02},
        },
        {
            "name": "robust",
            "init_from": {"stage": "cls", "checkpoint": "best"},
            "data": {"transforms": {"eval": [{"type": "core.rotation", "degrees": 30}]}},
            "train": {"epochs": 0},
        },
    ]
    return config


def _comparable(run_dir: Path) -> tuple[dict, str]:
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("run_dir", "wall_seconds"):  # where and how long, not what
        summary.pop(key)
    return summary, (run_dir / "metrics.jsonl").read_text()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> ForkedCLI:
    return ForkedCLI(tmp_path_factory.mktemp("logs"))


def test_kill_at_every_boundary_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, cli: ForkedCLI
) -> None:
    reference_config = write_config(tmp_path, _config(tmp_path, "a"), "a.json")
    assert cli.run(["run", str(reference_config), "--quiet"]) == 0, cli.output()
    reference = only_run_dir(tmp_path / "a")

    config = write_config(tmp_path, _config(tmp_path, "b"), "b.json")
    assert cli.run(["run", str(config), "--quiet"], kill_at=KILL_POINTS[0][0]) == KILLED
    run_dir = only_run_dir(tmp_path / "b")
    for point, when in KILL_POINTS[1:]:
        code = cli.run(["run", "--resume", str(run_dir), "--quiet"], kill_at=point)
        assert code == KILLED, f"not killed at {point} ({when}): exit {code}\n{cli.output()}"
        if point == "evaluation_end:rep:test":  # the stage's last checkpoint is written
            assert (run_dir / "checkpoints/rep/epoch-0001.pt").is_file()
            assert not (run_dir / "checkpoints/rep/summary.json").exists()
        if point == "stage_end:robust":
            assert not (run_dir / "summary.json").exists()
        if point == "run_end":
            assert list(run_dir.glob(".summary.json.*.tmp.json"))
    assert cli.run(["run", "--resume", str(run_dir), "--quiet"]) == 0, cli.output()

    summary, metrics = _comparable(run_dir)
    ref_summary, ref_metrics = _comparable(reference)
    assert summary["stages"]["rep"]["val"], "the validation result must survive the kill"
    assert summary == ref_summary
    assert metrics == ref_metrics
    assert not list(run_dir.rglob(".*.tmp*"))  # the half-written file is gone
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "completed" and "error" not in record
    assert len(record["resumes"]) == len(KILL_POINTS)
    assert record["components"] == json.loads((reference / "record.json").read_text())["components"]


def test_resume_refuses_a_config_that_resolves_differently(tmp_path: Path, cli: ForkedCLI) -> None:
    config = _config(tmp_path, "a")
    config["stages"] = []
    config["train"]["epochs"] = 1
    path = write_config(tmp_path, config, "a.json")
    assert cli.run(["run", str(path), "--quiet"], kill_at="evaluation_end:main:test") == KILLED
    run_dir = only_run_dir(tmp_path / "a")

    other = dict(config, seed=4, train={**config["train"], "epochs": 3})
    other_path = write_config(tmp_path, other, "other.json")
    assert cli.run(["run", str(other_path), "--resume", str(run_dir), "--quiet"]) == 1
    out = cli.output()
    assert f"--resume {run_dir}: {other_path} does not resolve to the run's config" in out
    assert "seed: the run has 3" in out and "gives 4" in out
    assert "train.epochs: the run has 1" in out
    assert "Traceback" not in out

    code = cli.run(["run", "--resume", str(run_dir), "--set", "train.epochs=1", "--quiet"])
    assert code == 0, cli.output()  # the same config, restated: accepted


def test_same_config_file_is_accepted_with_resume(tmp_path: Path) -> None:
    from asklepios.cli import run_command
    from asklepios.plugins import set_host

    host = probe_host()
    set_host(host)
    config = _config(tmp_path, "a")
    config["stages"], config["train"]["epochs"] = [], 1
    path = write_config(tmp_path, config, "a.json")
    run_command(path, quiet=True)
    run_dir = only_run_dir(tmp_path / "a")
    assert run_command(path, resume=run_dir, quiet=True)["test"]
    with pytest.raises(RunError, match=r"data\.loader\.batch_size: the run has 32"):
        run_command(path, ["data.loader.batch_size=8"], resume=run_dir, quiet=True)
    with pytest.raises(ConfigError):  # an invalid --set is a config error, as without --resume
        run_command(None, ["train.epochs=-1"], resume=run_dir, quiet=True)


def test_resume_names_the_stage_key_that_differs(tmp_path: Path) -> None:
    import yaml
    from asklepios.api import load_config
    from asklepios.config import dump_config
    from asklepios.engine.run import check_resume_config
    from asklepios.plugins import set_host

    set_host(probe_host())
    config = _config(tmp_path, "a")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(dump_config(load_config(config)))
    changed = yaml.safe_load(yaml.safe_dump(config))
    changed["stages"][1]["optimizer"]["lr"] = 0.5
    with pytest.raises(RunError) as raised:
        check_resume_config(run_dir, load_config(changed), "other.yaml")
    lines = str(raised.value).splitlines()[1:-1]
    assert lines == ["  - stages.cls.optimizer.lr: the run has 0.02, other.yaml gives 0.5"]


def test_a_run_that_fails_before_writing_anything_leaves_no_directory(tmp_path: Path) -> None:
    from asklepios.engine.loop import EngineError
    from asklepios.engine.run import run_experiment

    host = probe_host()
    config = make_config(tmp_path, stages=[{"name": "only", "freeze": ["encoder.*"]}])
    with pytest.raises(EngineError, match="encoder"):
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert not (tmp_path / "runs").exists()  # the output folder this run made is gone too
    kept = tmp_path / "kept"
    kept.mkdir()
    config["output_dir"] = str(kept / "a" / "b")
    with pytest.raises(EngineError, match="encoder"):
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert list(tmp_path.iterdir()) == [kept] and not any(kept.iterdir())  # kept stays


def test_a_non_finite_loss_exits_1_with_one_message_and_a_failed_record(
    tmp_path: Path, cli: ForkedCLI
) -> None:
    config = _config(tmp_path, "a")
    config["stages"], config["train"]["epochs"] = [], 1
    config["optimizer"] = {"name": "sgd", "lr": 1e30}
    path = write_config(tmp_path, config, "a.json")
    assert cli.run(["run", str(path), "--quiet"]) == 1
    out = cli.output()
    assert "error: stage main, epoch 1/1, step " in out and "Traceback" not in out
    record = json.loads((only_run_dir(tmp_path / "a") / "record.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("NonFiniteLossError")


def test_ctrl_c_marks_the_record_interrupted_and_the_run_resumes(tmp_path: Path) -> None:
    import types

    from asklepios.engine.run import run_experiment
    from asklepios_sdk import hookimpl

    @hookimpl
    def epoch_start(run: object, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    host = probe_host()
    host.add_plugin(types.SimpleNamespace(epoch_start=epoch_start), "ctrl_c")
    config = validate_config(make_config(tmp_path), host=host)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, host=host, quiet=True)
    run_dir = only_run_dir(tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "interrupted"
    assert record["error"].startswith("RunInterrupted: interrupted at")
    host = probe_host()
    summary = run_experiment(config, host=host, quiet=True, resume_dir=run_dir)
    assert summary["stages"]["main"]["val"]
    assert json.loads((run_dir / "record.json").read_text())["status"] == "completed"
