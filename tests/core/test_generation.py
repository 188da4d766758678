"""A generative model under test through the engine: evaluation only, cached, resumable, sharded.

The in-memory ``gen`` plugin has 10 questions (4 with a follow-up turn, 14 answers in all) and a
parameter-free model that logs every answer it generates. ``train.epochs: 0`` makes the
experiment evaluation-only: no optimizer, no DDP wrapper, the test split evaluated once.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import run_with_plugin, write_config

CONFIG: dict[str, Any] = {
    "name": "questions",
    "data": {"dataset": {"type": "gen.questions"}, "loader": {"batch_size": 4}},
    "model": {"backbone": {"type": "gen.echo"}},
    "evaluators": [{"type": "gen.answers"}],
    "train": {"epochs": 0, "device": "cpu"},
}


def _config(tmp_path: Path, name: str, **model: Any) -> Path:
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / name)
    config["model"]["backbone"].update(model)
    return write_config(tmp_path, config, f"{name}.json")


def _run(tmp_path: Path, args: list[str], out: str, ranks: int = 1) -> subprocess.CompletedProcess:
    return run_with_plugin(tmp_path, "_generation_plugin", "gen", args, out, ranks)


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _metrics(tmp_path: Path, out: str, rank: int = 0) -> dict[str, Any]:
    test = json.loads((tmp_path / f"{out}-{rank}.json").read_text())["test"]
    return {k: v for k, v in test.items() if k.startswith("answers/")}


@pytest.mark.slow
def test_a_killed_evaluation_resumes_generating_only_the_unfinished_answers(tmp_path) -> None:
    whole_log = tmp_path / "whole.jsonl"
    done = _run(tmp_path, [str(_config(tmp_path, "whole", log=str(whole_log)))], "whole")
    assert done.returncode == 0, done.stderr[-3000:]
    whole = _log(whole_log)
    assert len(whole) == 14 and len({json.dumps(r) for r in whole}) == 14
    calls_whole = len({r["call"] for r in whole})
    assert calls_whole == 6  # per batch of 4: one call for first turns, one for follow-ups

    log = tmp_path / "killed.jsonl"
    config = _config(tmp_path, "killed", log=str(log), kill_after_calls=3)
    killed = _run(tmp_path, [str(config)], "killed")
    assert killed.returncode == -9  # SIGKILL inside the 4th generate call
    before = _log(log)
    assert len(before) == 10 and len({r["call"] for r in before}) == 3
    (run_dir,) = (tmp_path / "killed").iterdir()
    cached = (run_dir / "answers" / "rank-0.jsonl").read_text().splitlines()
    assert len(cached) == 10  # every answer of a finished generate call was kept

    config_file = run_dir / "config.yaml"
    text = config_file.read_text().replace("kill_after_calls: 3", "kill_after_calls: 0")
    config_file.write_text(text)  # the model stops killing itself; nothing else changes
    resumed = _run(tmp_path, [str(config), str(run_dir)], "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _log(log)[len(before) :]
    assert len(after) == 4 and len({r["call"] for r in after}) == 3  # 14 - 10 answers
    asked = [(r["question"], r["turns"]) for r in before + after]
    assert len(set(asked)) == len(asked) == 14  # no answer generated twice
    assert _metrics(tmp_path, "resumed") == _metrics(tmp_path, "whole")


@pytest.mark.slow
def test_two_ranks_evaluate_like_one_and_share_their_answers(tmp_path) -> None:
    one = _run(tmp_path, [str(_config(tmp_path, "one"))], "one")
    assert one.returncode == 0, one.stderr[-3000:]
    log = tmp_path / "two.jsonl"
    two = _run(tmp_path, [str(_config(tmp_path, "two", log=str(log)))], "two", ranks=2)
    assert two.returncode == 0, two.stderr[-3000:]
    reference = _metrics(tmp_path, "one")
    assert reference["answers/items"] == 10.0 and reference["answers/turns"] == 14.0
    assert _metrics(tmp_path, "two", 0) == reference == _metrics(tmp_path, "two", 1)
    (run_dir,) = (tmp_path / "two").iterdir()
    files = sorted(p.name for p in (run_dir / "answers").iterdir())
    assert files == ["rank-0.jsonl", "rank-1.jsonl"]
    assert len(_log(log)) == 14
    (run_dir / "checkpoints" / "main" / "summary.json").unlink()  # evaluate the stage again
    again = _run(tmp_path, [str(run_dir / "config.yaml"), str(run_dir)], "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(_log(log)) == 14  # one process found both ranks' answers: nothing generated
    assert _metrics(tmp_path, "again") == reference


def test_an_evaluation_only_experiment_builds_no_optimizer(tmp_path) -> None:
    import _generation_plugin
    from asklepios.config import validate_config
    from asklepios.engine.run import run_experiment
    from asklepios.plugins import PluginHost

    host = PluginHost(discover=False)
    host.add_plugin(_generation_plugin, "gen")
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / "runs")
    summary = run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert summary["test"]["answers/items"] == 10.0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len((run_dir / "answers" / "rank-0.jsonl").read_text().splitlines()) == 14
    assert not list((run_dir / "checkpoints" / "main").glob("epoch-*.pt"))
