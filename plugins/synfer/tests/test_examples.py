"""Example configs (``examples/configs/synfer/``): they validate, and the tiny chain runs.

Runs go through the ``asklepios`` command line (plugins never import the core). The tiny chain
runs with fewer epochs, requests and DDIM steps than the committed config (``--set``) to keep
the suite short; ``sd15.yaml`` validates once its placeholder paths point at stand-ins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _tiny import save_classifier

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "synfer"

SHRINK = (
    "stages.real_classifier.train.epochs=2",
    "stages.held_out_classifier.train.epochs=2",
    "stages.calibrator_classifier.train.epochs=2",
    "stages.lora.train.epochs=1",
    "stages.au_adapter.train.epochs=1",
    "stages.generate.data.dataset.count=16",
    "stages.generate.data.loader.eval_batch_size=8",
    "stages.generate.model.adapters.1.steps=6",
    "stages.generate.model.adapters.1.invert_steps=4",
    "stages.generate.model.adapters.1.guidance_start=2",
    "stages.downstream.train.epochs=1",
)


def _asklepios(*args: str) -> subprocess.CompletedProcess:
    found = Path(sys.executable).with_name("asklepios")
    cli = str(found) if found.exists() else (shutil.which("asklepios") or "asklepios")
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [cli, *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_there_are_the_promised_configs() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {"tiny.yaml", "sd15.yaml"}


@pytest.mark.slow
def test_the_tiny_config_validates_deeply() -> None:
    out = _asklepios("validate", "--deep", str(EXAMPLES / "tiny.yaml"))
    assert "8 stage(s)" in out.stdout
    assert "guided generation stage" not in out.stdout + out.stderr  # no calibrator warning


def test_the_sd15_config_validates_with_its_paths_pointing_at_stand_ins(tmp_path) -> None:
    from asklepios_synfer.datasets import write_fetext
    from asklepios_synfer.ldm import write_tiny_pipeline
    from asklepios_synfer.params import DigitsFETextParams

    models, data = tmp_path / "models", tmp_path / "data"
    write_tiny_pipeline(models / "stable-diffusion-v1-5")
    for source in ("ffhq", "celeba_hq", "affectnet", "sfew"):
        write_fetext(data / "FEText" / source, DigitsFETextParams(classes=2, per_class=1))
    (data / "affectnet").mkdir(parents=True)
    (data / "affectnet" / "train.csv").write_text("path,label,split\n")
    for name in ("guidance", "held_out", "member_a", "member_b", "member_c", "features"):
        save_classifier(models / "fer" / f"{name}.pt")
    text = (EXAMPLES / "sd15.yaml").read_text()
    text = text.replace("/models/", f"{models}/").replace("/data/", f"{data}/")
    config = tmp_path / "sd15.yaml"
    config.write_text(text)
    out = _asklepios("validate", str(config))
    assert "5 stage(s): lora, au_adapter, generate, quality, downstream" in out.stdout


@pytest.mark.slow
def test_the_tiny_chain_generates_calibrates_and_trains_on_real_plus_synthetic(tmp_path) -> None:
    sets = [arg for value in (f"output_dir={tmp_path}", *SHRINK) for arg in ("--set", value)]
    _asklepios("run", str(EXAMPLES / "tiny.yaml"), "--quiet", *sets)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    stages = summary["stages"]
    generated = stages["generate"]["generated"]
    assert generated["items"] == generated["generated_now"] == 16
    folder = run_dir / "generated" / "generate"
    assert len(list((folder / "images").glob("*.png"))) == 16
    manifest = json.loads((folder / "manifest.json").read_text())
    guidance = manifest["generator"]["guidance_classifier"]
    assert guidance["source"] == "stage:real_classifier:best"
    quality = stages["quality"]["test"]
    for key in ("generation_quality/fer_accuracy", "generation_quality/fid"):
        assert key in quality
    shares = [quality[f"label_calibrator/{k}"] for k in ("agree", "relabelled", "soft", "dropped")]
    assert sum(shares) == pytest.approx(1.0)
    downstream = stages["downstream"]["test"]
    assert 0.0 <= downstream["classification/accuracy"] <= 1.0
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    assert [r["label"] for r in items] == [i % 8 for i in range(16)]


def _calibrator_members(stage: dict) -> list[dict]:
    calibrators = [e for e in stage.get("evaluators", []) if e["type"] == "synfer.label_calibrator"]
    dataset = stage.get("data", {}).get("dataset", {})
    if dataset.get("calibrator"):
        calibrators.append(dataset["calibrator"])
    return [member for c in calibrators for member in c["models"]]


def test_the_tiny_calibrator_votes_with_classifiers_independent_of_the_guidance_one() -> None:
    config = yaml.safe_load((EXAMPLES / "tiny.yaml").read_text())
    stages = {s["name"]: s for s in config["stages"]}
    guidance = stages["generate"]["model"]["adapters"][1]["classifier"]["from_stage"]
    for name in ("quality", "downstream"):
        members = _calibrator_members(stages[name])
        assert len(members) >= 2  # an ensemble that min_votes: 2 can agree in
        assert guidance not in {m["from_stage"] for m in members}, name


def test_validate_refuses_scoring_with_the_guidance_classifier_before_anything_runs(
    tmp_path,
) -> None:
    text = (EXAMPLES / "tiny.yaml").read_text()
    held_out = "from_stage: held_out_classifier, input_size: 16"
    line = next(x for x in text.splitlines() if "classifier: {" in x and held_out in x)
    config = tmp_path / "same.yaml"
    config.write_text(
        text.replace(
            line, line.replace("[32]", "[64]").replace("held_out_classifier", "real_classifier")
        )
    )
    found = Path(sys.executable).with_name("asklepios")
    cli = str(found) if found.exists() else "asklepios"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [cli, "validate", "--deep", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0
    assert "configuration error" in result.stdout + result.stderr
    assert "stages[6].evaluators[2]" in result.stdout + result.stderr
