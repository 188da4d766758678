"""The example configs through the `asklepios` command line: each validates, the real-data ones
run on fixture features, and the synthetic one learns to localise (and evaluates identically on
1 process and 2 torchrun ranks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ophnet_files import write_tal_fixture

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "ophnet"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
REAL = [
    "operation_localization",
    "operation_localization_actionformer",
    "phase_localization",
    "phase_localization_actionformer",
    "phase_recognition",
]
TINY = ["model.backbone.num_stages=2", "model.backbone.num_layers=3", "model.backbone.num_f_maps=8"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _asklepios() -> str:
    found = shutil.which("asklepios") or str(Path(sys.executable).with_name("asklepios"))
    if not Path(found).exists():
        pytest.skip("the asklepios CLI is not installed")
    return found


def _cli(*args: str, sets: list[str] = (), timeout: float = 400) -> subprocess.CompletedProcess:
    command = [_asklepios(), *args]
    for value in sets:
        command += ["--set", value]
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )


def _fixture_overrides(tmp_path: Path) -> list[str]:
    annotations, features = write_tal_fixture(tmp_path / "data")
    return [
        f"data.dataset.annotations={annotations}",
        f"data.dataset.features_dir={features}",
        "data.dataset.input_dim=6",
        "data.loader.num_workers=0",
    ]


def _summary(output_dir: Path) -> dict:
    (run_dir,) = [p for p in output_dir.iterdir() if p.is_dir()]
    return json.loads((run_dir / "summary.json").read_text())


def test_the_examples_are_the_documented_ones():
    assert sorted(p.stem for p in CONFIGS) == sorted([*REAL, "synthetic", "synthetic_actionformer"])


@pytest.mark.parametrize("name", REAL)
def test_real_data_configs_validate_once_pointed_at_data(tmp_path, name):
    done = _cli("validate", str(EXAMPLES / f"{name}.yaml"), sets=_fixture_overrides(tmp_path))
    assert done.returncode == 0, done.stderr


def test_the_placeholder_paths_are_reported_as_missing():
    done = _cli("validate", str(EXAMPLES / "phase_localization.yaml"))
    assert done.returncode == 1
    assert "file not found" in done.stderr and "OphNet2024_phase.json" in done.stderr


@pytest.mark.slow
def test_the_actionformer_baseline_config_runs_on_real_format_data(tmp_path):
    """The benchmark's detector recipe end to end on fixture features (JSON annotations, .npy
    features, the seconds grid), at a tiny width: it trains, and its test metrics are the
    benchmark's, from the detector's scored segments."""
    tiny = [
        "model.backbone.embd_dim=16",
        "model.backbone.head_dim=16",
        "model.backbone.mha_win_size=3",
        "model.backbone.n_head=2",
        "train.epochs=2",
        "schedule.warmup_epochs=1",
        "train.device=cpu",
        f"output_dir={tmp_path / 'runs'}",
    ]
    config = str(EXAMPLES / "phase_localization_actionformer.yaml")
    done = _cli("run", config, sets=[*_fixture_overrides(tmp_path), *tiny])
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert "type: ophnet.actionformer" in (run_dir / "config.yaml").read_text()
    test = _summary(tmp_path / "runs")["test"]
    assert {f"tal_map/mAP@{t}" for t in (0.3, 0.4, 0.5, 0.6, 0.7)} <= set(test)
    assert 0.0 <= test["tal_map/average"] <= 100.0


@pytest.mark.slow
def test_synthetic_config_learns_to_localise(tmp_path):
    """The figure the README reports: test average mAP after the configured 15 epochs."""
    sets = ["train.device=cpu", f"output_dir={tmp_path / 'runs'}"]
    done = _cli("run", str(EXAMPLES / "synthetic.yaml"), sets=sets)
    assert done.returncode == 0, done.stderr[-3000:]
    test = _summary(tmp_path / "runs")["test"]
    print(
        f"synthetic test: average mAP {test['tal_map/average']:.2f}, "
        f"rank score {test['phase_recognition/rank_score']:.4f}"
    )
    assert test["tal_map/average"] >= 60.0
    assert test["phase_recognition/video_accuracy"] >= 0.8


@pytest.mark.slow
def test_two_torchrun_ranks_evaluate_exactly_like_one_process(tmp_path):
    """The phase-localisation config on fixture features (JSON annotations, .npy features, the
    feature grid), untrained (epochs 0) with one video per evaluation batch: each video's logits
    are computed alike on either side, so the gathered evaluations must be equal, not merely
    close. The single validation video leaves rank 1 without an item."""
    sets = [*_fixture_overrides(tmp_path), *TINY, "train.epochs=0", "train.device=cpu"]
    sets.append("data.loader.eval_batch_size=1")
    config = str(EXAMPLES / "phase_localization.yaml")
    single = _cli("run", config, sets=[*sets, f"output_dir={tmp_path / 'one'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", "29563", _asklepios(), "run", config]
    for value in [*sets, f"output_dir={tmp_path / 'two'}"]:
        command += ["--set", value]
    done = subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "two").iterdir() if p.is_dir()]
    assert json.loads((run_dir / "record.json").read_text())["world_size"] == 2
    reference = {k: v for k, v in _summary(tmp_path / "one")["test"].items() if "/" in k}
    synced = {k: v for k, v in _summary(tmp_path / "two")["test"].items() if "/" in k}
    assert synced == reference
    assert {"tal_map/average", "tal_map/mAP@0.5", "phase_recognition/rank_score"} <= set(synced)


def test_the_plugin_commands_run_through_asklepios(tmp_path):
    listing = _cli("ophnet")
    assert listing.returncode == 2  # a command was expected: the listing says which
    for name in ("challenge", "convert", "pkl-to-npy"):
        assert f"  {name}" in listing.stdout
    loca = tmp_path / "loca.csv"
    loca.write_text(
        "video_id,start,end,split,surgery_id,phase_id,operation_id\nv,0,1,train,0,2,3\n"
    )
    out = tmp_path / "phase.json"
    done = _cli("ophnet", "convert", str(loca), str(out), "--default-fps", "25")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["database"]["v"]["fps"] == 25.0
    refused = _cli("ophnet", "pkl-to-npy", str(tmp_path), str(tmp_path / "npy"))
    assert refused.returncode == 1 and "unpickling runs code" in refused.stderr
