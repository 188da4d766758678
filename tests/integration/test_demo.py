"""The main job: `make demo`'s config runs end to end on the bundled digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_runs_and_reports_every_stage(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "asklepios",
        "run",
        str(ROOT / "examples" / "configs" / "quickstart.yaml"),
        "--set",
        f"output_dir={tmp_path}",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["representation", "classifier", "robustness"]
    assert stages["classifier"]["test"]["classification/balanced_accuracy"] > 0.8
    robustness = stages["robustness"]["test"]
    assert robustness["corruption_robustness/model/acc/clean"] > 0.8
    assert (
        robustness["corruption_robustness/model/acc/mean"]
        < robustness["corruption_robustness/model/acc/clean"]
    )
    record = json.loads((run_dir / "record.json").read_text())
    assert {p["id"] for p in record["plugins"]} >= {"core", "longtail", "diffusion_tta"}
    assert (run_dir / "plots" / "curves.png").is_file()
