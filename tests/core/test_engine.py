"""The engine end to end in-process: run directory, determinism, stages, folds, hooks, numerics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, only_run_dir, probe_host
from asklepios.config import validate_config
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.loop import EngineError
from asklepios.engine.run import run_experiment


def _run(tmp_path: Path, config: dict, **kwargs) -> dict:
    host = probe_host()
    return run_experiment(validate_config(config, host=host), host=host, quiet=True, **kwargs)


def test_run_writes_a_complete_run_directory(tmp_path: Path) -> None:
    summary = _run(tmp_path, make_config(tmp_path))
    run_dir = only_run_dir(tmp_path)
    for name in ("config.yaml", "record.json", "command.txt", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plots" / "main" / "curves.png").stat().st_size > 1000
    confusion = run_dir / "plots" / "main" / "classification_confusion_matrix.png"
    assert confusion.stat().st_size > 1000
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train", "val", "train", "val", "test"]
    assert rows[0]["loss"] > rows[2]["loss"]  # it learns
    test = summary["test"]
    assert 0.5 < test["classification/accuracy"] <= 1.0
    assert len(test["classification/confusion_matrix"]) == 10
    assert sum(map(sum, test["classification/confusion_matrix"])) == 200  # balanced 20 per class
    best = load_checkpoint(run_dir / "checkpoints" / "main" / "best.pt")
    assert best["epoch"] == summary["stages"]["main"]["best_epoch"]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["plugins"][0]["id"] == "core"
    assert record["world_size"] == 1 and record["seed"] == 3


def test_same_seed_gives_identical_results(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", make_config(tmp_path / "a"))
    second = _run(tmp_path / "b", make_config(tmp_path / "b"))
    assert first["test"] == second["test"]
    third = _run(tmp_path / "c", make_config(tmp_path / "c", seed=4))
    assert third["test"]["loss"] != first["test"]["loss"]


def test_epoch_and_evaluation_hooks_reach_components(tmp_path: Path) -> None:
    import _probe_plugin

    config = make_config(
        tmp_path,
        loss={"type": "probe.epoch_ce"},
        data={**make_config(tmp_path)["data"], "sampler": {"type": "probe.plain"}},
        model={
            "backbone": {"type": "core.mlp", "hidden": [16]},
            "adapters": [{"type": "probe.aux"}],
        },
    )
    _run(tmp_path, config)
    calls = _probe_plugin.CALLS
    assert calls["loss.set_epoch"] == [0, 1]
    assert calls["sampler.set_epoch"] == [0, 1]
    assert calls["adapter.set_epoch"] == [0, 1]  # model modules hear the epoch too
    assert len(calls["sampler.on_evaluation"]) == 2
    assert "classification/balanced_accuracy" in calls["sampler.on_evaluation"][0]
    assert calls["epoch_start"] == [0, 1]
    assert calls["evaluation_end"] == ["val", "val", "test"]
    steps = calls["step_end"]
    assert steps == list(range(1, len(steps) + 1))
    rows = (only_run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()
    train = json.loads(rows[0])
    assert train["aux/probe"] == pytest.approx(0.25)
    assert train["loss"] == pytest.approx(train["ce"] + 0.25, abs=1e-5)


def test_stages_initialise_freeze_and_replace_the_head(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        stages=[
            {"name": "first", "train": {"epochs": 1}},
            {
                "name": "second",
                "init_from": {"stage": "first", "checkpoint": "last"},
                "freeze": ["body.*"],
                "replace_head": True,
                "loss": {"type": "core.cross_entropy", "class_weights": "balanced"},
                "train": {"epochs": 1},
            },
        ],
    )
    summary = _run(tmp_path, config)
    ckpts = only_run_dir(tmp_path) / "checkpoints"
    first = load_checkpoint(ckpts / "first" / "last.pt")["model"]
    second = load_checkpoint(ckpts / "second" / "last.pt")["model"]
    assert torch.equal(first["body.1.weight"], second["body.1.weight"])  # frozen
    assert not torch.equal(first["classifier.weight"], second["classifier.weight"])
    assert set(summary["stages"]) == {"first", "second"}


def test_freeze_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, stages=[{"name": "only", "freeze": ["encoder.*"]}])
    with pytest.raises(EngineError, match="encoder"):
        _run(tmp_path, config)


def test_kfold_reports_mean_and_sd(tmp_path: Path) -> None:
    config = make_config(tmp_path, train={**make_config(tmp_path)["train"], "epochs": 1})
    summary = _run(tmp_path, config, folds=3)
    stats = summary["cv"]["classification/accuracy"]
    assert len(stats["values"]) == 3
    values = torch.tensor(stats["values"], dtype=torch.float64)
    assert stats["mean"] == pytest.approx(float(values.mean()))
    assert stats["std"] == pytest.approx(float(values.std()))  # sample sd (n - 1)
    assert (only_run_dir(tmp_path) / "fold-2" / "metrics.jsonl").is_file()


def test_gradient_accumulation_matches_the_larger_batch(tmp_path: Path) -> None:
    common = {"type": "core.mlp", "hidden": [16]}
    big = make_config(
        tmp_path / "big", model={"backbone": common}, optimizer={"name": "sgd", "lr": 0.05}
    )
    # 1600 training samples (160 per class): 50 batches of 32 or 100 of 16, nothing left over.
    big["data"]["dataset"] = {"type": "core.digits", "test_per_class": 7, "val_per_class": 7}
    big["data"]["loader"] = {"batch_size": 32}
    big["train"]["epochs"] = 1
    small = json.loads(json.dumps(big))
    small["output_dir"] = str(tmp_path / "small" / "runs")
    small["data"]["loader"] = {"batch_size": 16}
    small["train"]["accumulate"] = 2
    _run(tmp_path / "big", big)
    _run(tmp_path / "small", small)
    a = load_checkpoint(only_run_dir(tmp_path / "big") / "checkpoints/main/last.pt")["model"]
    b = load_checkpoint(only_run_dir(tmp_path / "small") / "checkpoints/main/last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_bf16_autocast_and_grad_clip_run_on_cpu(tmp_path: Path) -> None:
    train = {**make_config(tmp_path)["train"], "epochs": 1, "amp": "bf16", "grad_clip": 0.5}
    summary = _run(tmp_path, make_config(tmp_path, train=train))
    assert summary["test"]["loss"] > 0


@pytest.mark.slow
def test_dataloader_workers_are_seeded(tmp_path: Path) -> None:
    def config(sub: str) -> dict:
        cfg = make_config(tmp_path / sub)
        cfg["train"]["epochs"] = 1
        cfg["data"]["loader"] = {"batch_size": 64, "num_workers": 2}
        cfg["data"]["transforms"] = {"train": [{"type": "core.rotation", "degrees": 30}]}
        return cfg

    first = _run(tmp_path / "a", config("a"))
    second = _run(tmp_path / "b", config("b"))
    assert first["test"] == second["test"]


WATCHER_HOOKS = """
from asklepios_sdk import hookimpl

SEEN = []

@hookimpl
def run_start(run):
    SEEN.append(("run_start", run.stage))

@hookimpl
def step_end(run, step, losses):
    SEEN.append(("step_end", step))
"""


def test_lifecycle_plugins_take_part_without_being_named(tmp_path: Path, fake_site) -> None:
    import importlib

    module = fake_site.add("watcher", WATCHER_HOOKS)
    host = fake_site.host(builtins=True)
    config = validate_config(make_config(tmp_path), host=host)
    assert module not in sys.modules  # validating a config that does not name it imports nothing
    run_experiment(config, host=host, quiet=True)
    seen = importlib.import_module(module).SEEN
    assert seen[0][0] == "run_start"
    steps = [step for name, step in seen if name == "step_end"]
    assert steps == list(range(1, len(steps) + 1)) and steps


def test_a_lifecycle_plugin_that_fails_to_load_is_reported_not_dropped(tmp_path, capsys):
    import types

    from asklepios_sdk import hookimpl

    @hookimpl
    def run_start(run):
        raise AssertionError("a plugin that failed to load must take no part")

    @hookimpl
    def run_strat(run):  # misspelled: pluggy's check_pending rejects the module
        pass

    broken = types.ModuleType("asklepios_logger.hooks")
    broken.run_start, broken.run_strat = run_start, run_strat
    host = probe_host()
    host.strict = False
    host.add_plugin(broken, "logger", version="2.0", distribution="asklepios-logger")
    config = validate_config(make_config(tmp_path), host=host)
    run_experiment(config, host=host, quiet=True)
    err = capsys.readouterr().err
    assert "warning: plugin 'logger' (asklepios-logger 2.0) failed to load" in err
    assert "run_strat" in err and "takes no part in this run" in err
    record = json.loads((only_run_dir(tmp_path) / "record.json").read_text())
    assert len(record["plugin_problems"]) == 1 and "run_strat" in record["plugin_problems"][0]


def test_run_start_and_record_metadata_see_the_prepared_model(tmp_path):
    import types

    from asklepios_sdk import hookimpl

    seen: dict[str, object] = {}

    @hookimpl
    def run_start(run):
        seen["run_start"] = (run.model is not None, dict(run.optimizers).keys())

    @hookimpl
    def record_metadata(run):
        seen["record_metadata"] = sum(p.numel() for p in run.model.parameters())
        return {"parameters": seen["record_metadata"]}

    watcher = types.ModuleType("watcher_hooks")
    watcher.run_start, watcher.record_metadata = run_start, record_metadata
    host = probe_host()
    host.add_plugin(watcher, "watcher")
    run_experiment(validate_config(make_config(tmp_path), host=host), host=host, quiet=True)
    has_model, optimizers = seen["run_start"]
    assert has_model and list(optimizers) == ["main"]
    record = json.loads((only_run_dir(tmp_path) / "record.json").read_text())
    assert seen["record_metadata"] > 0
    assert record["plugins_metadata"]["watcher"] == {"parameters": seen["record_metadata"]}
    # a plugin that takes part through lifecycle hooks alone is one of the run's plugins
    assert "watcher" in [p["id"] for p in record["plugins"]]


def test_run_failed_tells_plugins_why_the_run_stopped(tmp_path):
    import types

    from asklepios_sdk import hookimpl

    calls: list[tuple[str, bool]] = []

    @hookimpl
    def run_failed(run, error, interrupted):
        calls.append((error, interrupted))

    watcher = types.ModuleType("watcher_hooks")
    watcher.run_failed = run_failed
    host = probe_host()
    host.add_plugin(watcher, "watcher")
    config = make_config(tmp_path, optimizer={"name": "sgd", "lr": 1e30})  # diverges
    with pytest.raises(Exception, match="non-finite"):
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert len(calls) == 1 and "non-finite" in calls[0][0] and calls[0][1] is False
    record = json.loads((only_run_dir(tmp_path) / "record.json").read_text())
    assert record["status"] == "failed" and "non-finite" in record["error"]
