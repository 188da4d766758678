"""The main job: `make demo`'s config runs end to end and shows cRT working.

Stage 1 trains with plain cross-entropy on digits long-tailed at ratio 50; stage 2 (cRT) re-trains
a fresh classifier on the frozen features with class-balanced batches; balanced accuracy and
few-shot recall must rise on the balanced test split, and the run's last line says by how much.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_shows_crt_raising_balanced_accuracy_and_few_shot_recall(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        "-m",
        "asklepios",
        "run",
        str(ROOT / "examples" / "configs" / "quickstart.yaml"),
        "--set",
        f"output_dir={tmp_path}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # about 25 s of CPU; no thread contention
    # trackers that happen to be installed copy plots into their own stores; not this test's topic
    disabled = [d for d in env.get("ASKLEPIOS_DISABLE_PLUGINS", "").split(",") if d]
    env["ASKLEPIOS_DISABLE_PLUGINS"] = ",".join([*disabled, "mlflow", "tensorboard"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["representation", "classifier", "robustness"]
    before, after = stages["representation"]["test"], stages["classifier"]["test"]
    bacc, few = "classification/balanced_accuracy", "shot_groups/acc_few"
    assert after[bacc] > before[bacc] + 0.05
    assert after[few] > before[few] + 0.1
    last = done.stdout.strip().splitlines()[-1]
    assert last == (
        f"classifier vs representation (test): balanced_accuracy {before[bacc]:.3f} -> "
        f"{after[bacc]:.3f} ({after[bacc] - before[bacc]:+.3f}), acc_few {before[few]:.3f} -> "
        f"{after[few]:.3f} ({after[few] - before[few]:+.3f})"
    )
    robustness = stages["robustness"]["test"]
    assert robustness["corruption_robustness/model/acc/clean"] == pytest.approx(
        after["classification/accuracy"], abs=0.01
    )
    assert (
        robustness["corruption_robustness/model/acc/mean"]
        < robustness["corruption_robustness/model/acc/clean"]
    )
    assert re.search(r"stage robustness: corruption_robustness/model/acc_matrix", done.stdout)
    record = json.loads((run_dir / "record.json").read_text())
    assert {p["id"] for p in record["plugins"]} >= {"core", "longtail", "diffusion_tta"}
    plots = run_dir / "plots"
    for name in (
        "curves.png",
        "representation/curves.png",
        "classifier/classification_confusion_matrix.png",
        "robustness/corruption_robustness_model_acc_matrix.png",
    ):
        assert (plots / name).is_file(), name
    assert not [p for p in run_dir.rglob("*.png") if plots not in p.parents]
    umask = os.umask(0)
    os.umask(umask)
    for path in run_dir.rglob("*"):
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
