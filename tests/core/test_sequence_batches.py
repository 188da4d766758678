"""Variable-length sequences through the engine: the split's collate, whole videos per rank.

The in-memory ``seq`` plugin has videos of 3 to 17 steps; its split declares
``SequenceCollate``, which the engine's DataLoaders must use (torch's default collate cannot
stack them). Under a 2-rank torchrun the evaluator, which gathers per-video results by item
index, gives exactly the one-process result: without training (``epochs: 0``) and with one video
per evaluation batch, every video's logits are computed identically in both runs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import REPO, write_config
from asklepios.config import validate_config
from asklepios.engine.run import run_experiment

CONFIG: dict[str, Any] = {
    "name": "videos",
    "seed": 4,
    "data": {"dataset": {"type": "seq.videos"}, "loader": {"batch_size": 4}},
    "model": {"backbone": {"type": "seq.conv"}},
    "loss": {"type": "seq.step_ce"},
    "optimizer": {"name": "adam", "lr": 0.05},
    "evaluators": [{"type": "seq.videos"}],
    "train": {"epochs": 4, "device": "cpu", "monitor": {"metric": "videos/video_accuracy"}},
}

RUNNER = """
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "core"))
import _sequence_plugin
from asklepios.plugins import PluginHost, set_host
host = PluginHost(discover=False)
host.add_plugin(_sequence_plugin, "seq")
set_host(host)
from asklepios.cli import run_command
summary = run_command(sys.argv[1], [], resume=None, quiet=True)
with open(os.environ["SUMMARY_OUT"] + "-" + os.environ.get("RANK", "0") + ".json", "w") as f:
    json.dump(summary, f)
"""


def _host() -> Any:
    import _sequence_plugin
    from asklepios.plugins import PluginHost

    host = PluginHost(discover=False)
    host.add_plugin(_sequence_plugin, "seq")
    return host


def _config(tmp_path: Path, **train: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / "runs")
    config["train"].update(train)
    return config


def test_the_default_collate_cannot_batch_the_videos() -> None:
    from _sequence_components import VideoSplit

    split = VideoSplit(4, seed=0)
    with pytest.raises(RuntimeError):
        torch.utils.data.default_collate([split[0], split[1]])


def test_the_engine_batches_variable_length_videos_with_the_split_collate(tmp_path) -> None:
    host = _host()
    config = validate_config(_config(tmp_path), host=host)
    summary = run_experiment(config, host=host, quiet=True)
    test = summary["test"]
    assert test["videos/videos"] == 7.0  # every test video once
    from _sequence_components import VideoSplit

    steps = sum(int((item["frame_labels"] >= 0).sum()) for item in VideoSplit(7, seed=4 + 2).items)
    assert test["videos/steps"] == float(steps)
    assert test["videos/video_accuracy"] > 0.8  # shifts by phase are learnable per step


@pytest.mark.slow
@pytest.mark.parametrize("eval_batch_size", [1, 3])
def test_two_ranks_evaluate_exactly_like_one_process(tmp_path, eval_batch_size: int) -> None:
    config = _config(tmp_path, epochs=0)
    config["data"]["loader"]["eval_batch_size"] = eval_batch_size
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = write_config(tmp_path, {**config, "output_dir": str(tmp_path / "one")}, "one.json")
    two = write_config(tmp_path, {**config, "output_dir": str(tmp_path / "two")}, "two.json")
    single = subprocess.run(
        [sys.executable, str(runner), str(one)],
        cwd=REPO,
        env={**env, "SUMMARY_OUT": str(tmp_path / "one")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    port = 29540 + eval_batch_size
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    launched = subprocess.run(
        [*torchrun, "--master_port", str(port), str(runner), str(two)],
        cwd=REPO,
        env={**env, "SUMMARY_OUT": str(tmp_path / "two")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    reference = json.loads((tmp_path / "one-0.json").read_text())["test"]
    ranks = [json.loads((tmp_path / f"two-{r}.json").read_text())["test"] for r in (0, 1)]
    metrics = {k: v for k, v in reference.items() if k.startswith("videos/")}
    assert metrics["videos/videos"] == 7.0
    for rank in ranks:
        synced = {k: v for k, v in rank.items() if k.startswith("videos/")}
        if eval_batch_size == 1:
            assert synced == metrics  # exactly: same logits per video, same order of items
        else:  # padding to another length may change float rounding inside the convolution
            assert synced == pytest.approx(metrics, abs=1e-6)
