"""The example configs: each validates, and the demos run end to end on the bundled fixture.

The stub demo runs every dimension in-process; the tiny Hugging Face demo and the 2-rank check
(a torchrun evaluation equal to one process, sharing one answer cache) are marked slow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import asklepios
import pytest
import yaml
from asklepios_cares.report import DIMENSIONS, dimension_scores
from asklepios_cares.report import main as report_main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "cares"
DIMENSION_CONFIGS = ["fairness", "privacy", "robustness", "safety", "trustfulness"]
PLACEHOLDERS = ["benchmark", *DIMENSION_CONFIGS]


def test_the_examples_are_the_documented_ones() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    assert names == sorted(["demo", "demo_tiny_hf", *PLACEHOLDERS])


@pytest.mark.parametrize("name", ["demo", "demo_tiny_hf"])
def test_the_demos_validate_as_written(name: str) -> None:
    issues = asklepios.validate(EXAMPLES / f"{name}.yaml")
    assert not issues, [i.format() for i in issues]


@pytest.mark.parametrize("name", PLACEHOLDERS)
def test_the_benchmark_configs_only_miss_their_data(name: str) -> None:
    issues = asklepios.validate(EXAMPLES / f"{name}.yaml")
    assert issues and all("not found" in i.message or "not exist" in i.message for i in issues), [
        i.format() for i in issues
    ]


def _fixture_dir(tmp_path: Path) -> str:
    return f"data.dataset.directory={tmp_path / 'fixture'}"


def test_the_stub_demo_runs_every_dimension(tmp_path: Path) -> None:
    run = asklepios.run(
        EXAMPLES / "demo.yaml", tmp_path / "run", overrides=[_fixture_dir(tmp_path)]
    )
    stages = run.summary["stages"]
    assert len(stages) == 10
    fact = stages["factuality"]["test"]
    assert fact["factuality/yes_no/n"] == 6 and fact["factuality/mcq/n"] == 12
    assert fact["llm_judge/score"] == 7.0 and fact["llm_judge/scored"] == 6
    assert stages["privacy_zero_shot"]["test"]["abstention/abstention"] == 1.0  # stub refuses
    assert stages["jailbreak_1"]["test"]["abstention/abstention"] == 0.0
    assert stages["toxicity"]["test"]["toxicity/scored"] == 24
    unc = stages["uncertainty"]["test"]
    assert 0 <= unc["uncertainty/uncertainty_acc"] <= 1 and unc["uncertainty/n"] == 18
    assert "fairness/race/aed" in stages["fairness"]["test"]
    cached = (tmp_path / "run" / "answers" / "rank-0.jsonl").read_text().splitlines()
    questions = {(json.loads(x)["qid"], json.loads(x)["turn"]) for x in cached}
    # 10 stages of 24 questions; the fairness stage and the uncertainty stage's first turn ask
    # the factuality stage's conversations, which are generated once: 8 sets + 24 follow-ups
    assert len(cached) == 24 * 8 + 24 and len(questions) == 48
    report = (tmp_path / "run" / "cares" / "report.md").read_text()
    assert all(f"## {d}" in report for d in DIMENSIONS)
    assert (tmp_path / "run" / "cares" / "radar.png").stat().st_size > 1000
    scores = dimension_scores(run.summary)
    assert all(0 <= scores[d] <= 100 for d in DIMENSIONS)
    out = tmp_path / "compare"
    assert report_main([str(tmp_path / "run"), str(tmp_path / "run"), "--out", str(out)]) == 0
    compared = (out / "cares" / "report.md").read_text()
    assert "| stage | metric | run | run |" in compared  # one column per run


@pytest.mark.slow
def test_the_tiny_hf_demo_runs_through_transformers(tmp_path: Path) -> None:
    """Three of its stages (a task prompt, a follow-up turn, noised images) to stay quick."""
    config = yaml.safe_load((EXAMPLES / "demo_tiny_hf.yaml").read_text())
    base = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    keep = ("uncertainty", "jailbreak_1", "robustness_input")
    config["stages"] = [s for s in base["stages"] if s["name"] in keep]
    config["extends"] = str(EXAMPLES / "demo.yaml")
    config["data"] = {"dataset": {"type": "cares.fixture", "directory": str(tmp_path / "fx")}}
    config["model"]["backbone"].update(model_dir=str(tmp_path / "tiny-vlm"), max_new_tokens=3)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run = asklepios.run(path, tmp_path / "run")
    assert (tmp_path / "tiny-vlm" / "model.safetensors").is_file()
    stages = run.summary["stages"]
    assert set(stages) == set(keep)
    assert stages["robustness_input"]["test"]["factuality/yes_no/n"] == 6
    assert stages["uncertainty"]["test"]["uncertainty/n"] == 18
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert "cares.hf_vlm" in record["components"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_score_like_one_process(tmp_path: Path) -> None:
    """Three stages of the demo (every string-rule evaluator) on 1 process and 2 ranks."""
    demo = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    keep = ("uncertainty", "fairness", "robustness_input")
    demo["stages"] = [s for s in demo["stages"] if s["name"] in keep]
    demo["data"]["dataset"]["directory"] = str(tmp_path / "fixture")
    demo["data"]["loader"]["batch_size"] = 5  # uneven shards: 24 questions, 5 batches
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    two = [*torchrun, "--master_port", str(_free_port())]
    results = {}
    for name, launcher in (("one", [sys.executable]), ("two", two)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**demo, "output_dir": str(tmp_path / name)}))
        done = subprocess.run(
            [*launcher, "-m", "asklepios", "run", str(config), "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (summary,) = (tmp_path / name).glob("*/summary.json")
        results[name] = json.loads(summary.read_text())["stages"]
    assert set(results["one"]) == set(keep)
    for stage, data in results["one"].items():
        assert results["two"][stage]["test"] == pytest.approx(data["test"], nan_ok=True), stage
    (run_dir,) = (tmp_path / "two").iterdir()
    assert sorted(p.name for p in (run_dir / "answers").iterdir()) == [
        "rank-0.jsonl",
        "rank-1.jsonl",
    ]
