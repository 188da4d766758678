"""``asklepios run`` / ``validate`` on the example configs (tiny models, skimage data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import clip_checkpoint, fake_idrid, sam_checkpoint
from asklepios_sdk.weights import file_sha256

CONFIGS = Path(__file__).resolve().parents[3] / "examples" / "configs" / "tpdrseg"
CLI = shutil.which("asklepios", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.skipif(CLI is None, reason="the asklepios CLI is not installed"),
    pytest.mark.skipif(not CONFIGS.is_dir(), reason="run from a checkout with examples/"),
]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    assert CLI is not None
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_tiny_config_trains_with_referenced_frozen_weights(tmp_path) -> None:
    sam, clip = sam_checkpoint(), clip_checkpoint()
    result = _cli(
        "run",
        str(CONFIGS / "skimage_tiny.yaml"),
        "--quiet",
        "--set", f"output_dir={tmp_path / 'runs'}",
        "--set", "train.epochs=1",
        "--set", "model.backbone.random_init=false",
        "--set", f"model.backbone.checkpoint={sam}",
        "--set", f"model.adapters.0.clip_file={clip}",
        "--set", f"model.adapters.3.checkpoint={sam}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").glob("tpdrseg-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary["test"]
    for key in ("MA/dice_dataset", "EX/aupr_dataset", "mean/dice_per_image"):
        assert 0 <= test[f"lesions/{key}"] <= 1
    assert sorted(p.name for p in (run_dir / "overlays" / "main").glob("*.png"))
    record = json.loads((run_dir / "record.json").read_text())
    frozen = record["plugins_metadata"]["tpdrseg"]["frozen_weights"]
    assert frozen["model.backbone"]["sha256"] == file_sha256(sam)
    assert frozen["model.adapters.0"]["sha256"] == file_sha256(clip)
    (checkpoint,) = (run_dir / "checkpoints" / "main").glob("epoch-*.pt")
    state = torch.load(checkpoint, weights_only=True)["model"]
    assert not [k for k in state if "encoder.blocks" in k or ".clip.clip." in k]
    assert any("injectors.0.gamma" in k for k in state)
    assert any(k.endswith("decoder.mask_tokens.weight") for k in state)


def test_the_idrid_config_validates_once_its_paths_exist(tmp_path) -> None:
    root = fake_idrid(tmp_path / "A. Segmentation")
    sam, clip = sam_checkpoint(), clip_checkpoint()
    result = _cli(
        "validate",
        str(CONFIGS / "idrid_train.yaml"),
        "--set", f"data.dataset.root={root}",
        "--set", f"model.backbone.checkpoint={sam}",
        "--set", f"model.adapters.0.clip_file={clip}",
        "--set", f"model.adapters.3.checkpoint={sam}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_the_tiny_config_validates_as_it_is(tmp_path) -> None:
    result = _cli("validate", str(CONFIGS / "skimage_tiny.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
