"""The example configs: each validates, the real-data ones run on fixture features, and the
synthetic one learns to localise (and evaluates identically on 1 process and 2 torchrun ranks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asklepios
import pytest
from ophnet_files import write_tal_fixture

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "ophnet"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
REAL = ["operation_localization", "phase_localization", "phase_recognition"]
TINY = ["model.backbone.num_stages=2", "model.backbone.num_layers=3", "model.backbone.num_f_maps=8"]


def _fixture_overrides(tmp_path: Path) -> list[str]:
    annotations, features = write_tal_fixture(tmp_path / "data")
    return [
        f"data.dataset.annotations={annotations}",
        f"data.dataset.features_dir={features}",
        "data.dataset.input_dim=6",
        "data.loader.num_workers=0",
    ]


def test_the_examples_are_the_documented_ones():
    assert sorted(p.stem for p in CONFIGS) == sorted([*REAL, "synthetic"])


@pytest.mark.parametrize("name", REAL)
def test_real_data_configs_validate_once_pointed_at_data(tmp_path, name):
    issues = asklepios.validate(EXAMPLES / f"{name}.yaml", _fixture_overrides(tmp_path))
    assert not issues, [i.format() for i in issues]
    missing = asklepios.validate(EXAMPLES / f"{name}.yaml")  # the placeholder paths
    assert any("not found" in i.message for i in missing)


def test_synthetic_config_validates_as_written():
    assert not asklepios.validate(EXAMPLES / "synthetic.yaml")


def test_phase_localization_runs_one_epoch_on_fixture_features(tmp_path):
    overrides = [*_fixture_overrides(tmp_path), *TINY, "train.epochs=1", "train.device=cpu"]
    run = asklepios.run(EXAMPLES / "phase_localization.yaml", tmp_path / "run", overrides=overrides)
    test = run.test_metrics
    assert {"tal_map/average", "tal_map/mAP@0.5", "phase_recognition/rank_score"} <= set(test)
    assert 0.0 <= test["tal_map/average"] <= 100.0


@pytest.mark.slow
def test_synthetic_config_learns_to_localise(tmp_path):
    """The figure the README reports: test average mAP after the configured 15 epochs."""
    run = asklepios.run(
        EXAMPLES / "synthetic.yaml", tmp_path / "run", overrides=["train.device=cpu"]
    )
    test = run.test_metrics
    print(
        f"synthetic test: average mAP {test['tal_map/average']:.2f}, "
        f"rank score {test['phase_recognition/rank_score']:.4f}"
    )
    assert test["tal_map/average"] >= 60.0
    assert test["phase_recognition/video_accuracy"] >= 0.8


@pytest.mark.slow
def test_two_torchrun_ranks_evaluate_exactly_like_one_process(tmp_path):
    """Untrained (epochs 0), one video per evaluation batch: the same logits for each video on
    either side, so the evaluators' gathered results must be equal, not merely close."""
    overrides = [
        "train.epochs=0",
        "train.device=cpu",
        "data.loader.eval_batch_size=1",
        "data.dataset.val=5",
        "data.dataset.test=7",
    ]
    single = asklepios.run(EXAMPLES / "synthetic.yaml", tmp_path / "one", overrides=overrides)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29563",
        "-m",
        "asklepios",
        "run",
        str(EXAMPLES / "synthetic.yaml"),
        "--set",
        f"output_dir={tmp_path / 'two'}",
    ]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "two").iterdir() if p.is_dir()]
    ranked = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "record.json").read_text())
    assert record["world_size"] == 2
    reference = {k: v for k, v in single.test_metrics.items() if "/" in k}
    synced = {k: v for k, v in ranked["test"].items() if "/" in k}
    assert synced == reference
    assert "tal_map/average" in synced and "phase_recognition/video_accuracy" in synced
