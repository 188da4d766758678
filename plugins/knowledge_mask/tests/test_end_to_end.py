"""``asklepios run`` on the example config: the SYNTHETIC retina-photo videos, a few CPU steps."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "configs" / "knowledge_mask"
CLI = shutil.which("asklepios", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CLI is None, reason="the asklepios CLI is not installed"),
    pytest.mark.skipif(not CONFIGS.is_dir(), reason="run from a checkout with examples/"),
]


def _run(config: str, tmp_path: Path) -> tuple[dict, list[dict]]:
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [CLI, "run", str(CONFIGS / config), "--quiet", "--set", f"output_dir={tmp_path / 'runs'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").glob("knowledge-mask-synthetic-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return summary, [line for line in lines if line.get("split") == "train"]


@pytest.mark.parametrize("config", ["synthetic_smoke.yaml", "synthetic_attention.yaml"])
def test_synthetic_runs(config: str, tmp_path: Path) -> None:
    summary, train = _run(config, tmp_path)
    test = summary["test"]
    assert 0 < test["video/psnr"] < 100 and -1 <= test["video/ssim"] <= 1
    assert train, "no training metrics were logged"
    keys = ["G_GAN", "G_GAN_temp", "G_GAN_Feat", "G_seg", "G_NCE", "loss_D"]
    if "attention" in config:
        keys.append("mask_bce")
    for key in keys:
        assert all(math.isfinite(line[key]) for line in train), key


def test_faithful_config_validates() -> None:
    # the two configs above are run; this one reproduces the released code's quirks
    config = CONFIGS / "synthetic_faithful.yaml"
    result = subprocess.run(
        [CLI, "validate", str(config)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
