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


def test_synthetic_smoke_run(tmp_path: Path) -> None:
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    config = CONFIGS / "synthetic_smoke.yaml"
    result = subprocess.run(
        [CLI, "run", str(config), "--quiet", "--set", f"output_dir={tmp_path / 'runs'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").glob("knowledge-mask-synthetic-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary["test"]
    assert 0 < test["video/psnr"] < 100 and -1 <= test["video/ssim"] <= 1
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line.get("split") == "train"]
    assert train, "no training metrics were logged"
    for key in ("G_GAN", "G_GAN_temp", "G_GAN_Feat", "G_seg", "G_NCE", "loss_D"):
        assert all(math.isfinite(line[key]) for line in train), key
