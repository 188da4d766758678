"""A synfer generation stage killed mid-way resumes without regenerating a finished image.

The generation-only config makes 24 images in batches of 2 with the tiny model. One run goes
through; another is SIGKILLed once its journal holds some items, then resumed with
``asklepios run --resume``. The resume generates only the missing items (the stage's own count),
leaves every finished image untouched, and ends with the same bytes as the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = {
    "name": "synfer-resume",
    "seed": 1,
    "data": {
        "dataset": {
            "type": "synfer.requests",
            "count": 24,
            "class_names": ["zero", "one", "two", "three"],
            "prompt": "a photo of the digit {expression}",
            "au_source": "class_mean",
            "layouts": {"type": "synfer.digits_fetext", "classes": 4, "per_class": 6},
        },
        "loader": {"eval_batch_size": 2},
    },
    "model": {
        "backbone": {"type": "synfer.ldm"},
        "adapters": [
            {"type": "synfer.au_adapter"},
            {"type": "synfer.guided_generation", "steps": 30, "invert_steps": 20},
        ],
    },
    "train": {"device": "cpu"},
    "stages": [{"name": "generate", "generate": {"split": "train"}}],
}


def _cli() -> str:
    found = Path(sys.executable).with_name("asklepios")
    return str(found) if found.exists() else (shutil.which("asklepios") or "asklepios")


ENV = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}


def _run(*args: str) -> None:
    done = subprocess.run([_cli(), *args], capture_output=True, text=True, env=ENV, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _journaled(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("journal/rank-*.jsonl"))


@pytest.mark.slow
def test_a_killed_synfer_generation_resumes_with_the_same_images(tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    _run("run", str(config), "--quiet", "--set", f"output_dir={tmp_path / 'whole'}")
    (whole_dir,) = (tmp_path / "whole").iterdir()
    whole = whole_dir / "generated" / "generate"
    reference = {p.name: p.read_bytes() for p in (whole / "images").glob("*.png")}
    assert len(reference) == 24

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [_cli(), "run", str(config), "--quiet", "--set", f"output_dir={out}"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    folder: Path | None = None
    while time.time() < deadline and process.poll() is None:
        found = list(out.glob("*/generated/generate"))
        if found and _journaled(found[0]) >= 4:
            folder = found[0]
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert folder is not None and process.returncode == -9, "the run ended before the kill"
    assert not (folder / "manifest.json").exists()
    before = _journaled(folder)
    assert 4 <= before < 24
    finished = {
        json.loads(json.loads(line)["answer"])["path"]
        for p in folder.glob("journal/rank-*.jsonl")
        for line in p.read_text().splitlines()
        if line.endswith("}")
    }
    stamps = {path: (folder / path).stat().st_mtime_ns for path in finished}

    _run("run", "--resume", str(folder.parents[1]), "--quiet")
    summary = json.loads((folder.parents[1] / "summary.json").read_text())
    generated = summary["stages"]["generate"]["generated"]
    assert generated["reused"] == len(finished) and generated["generated_now"] == 24 - len(finished)
    assert {p: (folder / p).stat().st_mtime_ns for p in finished} == stamps  # not rewritten
    again = {p.name: p.read_bytes() for p in (folder / "images").glob("*.png")}
    assert again == reference
    records = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(24))
