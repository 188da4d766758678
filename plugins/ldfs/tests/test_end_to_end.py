"""``asklepios run`` on the example two-stage configs (toy space; tiny random-init open_clip)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "configs" / "ldfs"
CLI = shutil.which("asklepios", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CLI is None, reason="the asklepios CLI is not installed"),
    pytest.mark.skipif(not CONFIGS.is_dir(), reason="run from a checkout with examples/"),
]


def run(config: str, cwd: Path) -> dict:
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [CLI, "run", str(CONFIGS / config), "--quiet", "--set", f"output_dir={cwd / 'runs'}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (cwd / "runs").glob("ldfs-*")
    return {"dir": run_dir, **json.loads((run_dir / "summary.json").read_text())}


def test_toy_two_stage_pipeline(tmp_path):
    from asklepios_ldfs.synthesizer import load_synthesizer

    summary = run("toy_two_stage.yaml", tmp_path)
    net = load_synthesizer(summary["dir"] / "ldfs" / "synthesizer-synthesis.safetensors")
    assert net.w2.abs().sum() > 0  # trained away from the zero-initialised identity
    finetune = summary["stages"]["finetune"]["test"]
    zero_shot = summary["stages"]["synthesis"]["test"]
    assert finetune["domain_accuracy/source"] >= 0.95
    assert finetune["domain_accuracy/sketch"] > zero_shot["domain_accuracy/sketch"]


def test_digits_tiny_open_clip_smoke(tmp_path):
    summary = run("digits_open_clip_smoke.yaml", tmp_path)
    assert set(summary["stages"]) == {"synthesis", "finetune"}
    assert torch.isfinite(torch.tensor(summary["test"]["loss"]))
    assert list((tmp_path / "runs" / "feature-cache").glob("*.safetensors"))
