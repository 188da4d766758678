"""The example pipeline through `asklepios run`, tiny: classifier, diffusion, adapt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLE = (
    Path(__file__).resolve().parents[3] / "examples" / "configs" / "diffusion_tta" / "digits_c.yaml"
)


def _tiny_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["output_dir"] = str(tmp_path / "runs")
    config["data"]["dataset"].update(image_size=8, test_per_class=1, val_per_class=1)
    config["data"]["wrappers"][0].update(corruptions=["gaussian_noise"], severities=[5])
    config["train"]["epochs"] = 2
    _, diffusion, adapt = config["stages"]
    diffusion["model"]["backbone"].update(block_out_channels=[8, 16], norm_num_groups=4)
    diffusion["train"]["epochs"] = 1
    adapt["model"]["adapters"][0].update(timestep_respacing="10", start_step=2)
    path = tmp_path / "digits_c_tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLE.is_file(), reason="run from a checkout with examples/")
def test_digits_c_pipeline_runs_offline(tmp_path: Path) -> None:
    cli = shutil.which("asklepios", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the asklepios console script is not installed next to this interpreter")
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [cli, "run", str(_tiny_config(tmp_path)), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "source_diffusion" / "unet" / "config.json").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    adapt_test = [r for r in records if r.get("stage") == "adapt" and r.get("split") == "test"]
    assert adapt_test, "the adapt stage wrote no test metrics"
    metrics = adapt_test[-1]
    for predictor in ("model", "source", "adapted"):
        value = metrics[f"corruption_robustness/{predictor}/acc/gaussian_noise/s5"]
        assert 0.0 <= value <= 1.0
    assert (run_dir / "plots" / "adapt" / "corruption_robustness_adapted_acc_matrix.png").is_file()
