"""The answer cache on CARES: kill the demo mid-evaluation, resume it, regenerate nothing.

The stub demo (``examples/configs/cares/demo.yaml``, 24 questions, 10 stages, 216 answers in
``<run>/answers/rank-0.jsonl``, one JSON line per generated answer) runs through the
``asklepios`` CLI in a subprocess with the stub waiting ``latency_s`` per generate call, so a
watcher can SIGKILL it once the cache has passed ``KILL_AT`` lines (inside a stage: each batch
writes 8). ``asklepios run --resume`` then finishes it. The cache appends one line per
generated answer, so a key on two lines would be an answer generated twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asklepios
import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "cares"
TOTAL = 24 * 8 + 24  # 8 sets of 24 conversations + 24 follow-ups (see test_examples.py)
KILL_AT = 80  # the first batch of the 5th stage (overcautiousness_1): 72 + 8


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asklepios", "run", *args, "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _complete_lines(path: Path) -> list[str]:
    """Return the lines of ``path`` that end in a newline (a kill can cut the last one)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return text.splitlines(keepends=True)[: text.count("\n")]


def _scores(summary: dict[str, Any]) -> dict[str, str]:
    """Return each stage's test metrics as JSON text (NaN equals NaN there)."""
    return {
        name: json.dumps(stage["test"], sort_keys=True) for name, stage in summary["stages"].items()
    }


@pytest.mark.slow
def test_a_killed_cares_evaluation_resumes_without_regenerating_an_answer(tmp_path: Path) -> None:
    fixture = f"data.dataset.directory={tmp_path / 'fixture'}"
    whole = asklepios.run(EXAMPLES / "demo.yaml", tmp_path / "whole", overrides=[fixture])
    whole_lines = _complete_lines(tmp_path / "whole" / "answers" / "rank-0.jsonl")
    assert len(whole_lines) == TOTAL

    runs = tmp_path / "runs"
    killed = _cli(
        str(EXAMPLES / "demo.yaml"),
        "--set",
        fixture,
        "--set",
        f"output_dir={runs}",
        "--set",
        "model.backbone.latency_s=0.1",
    )
    deadline = time.monotonic() + 120
    cache: Path | None = None
    while killed.poll() is None and time.monotonic() < deadline:
        found = list(runs.glob("*/answers/rank-0.jsonl"))
        if found and len(_complete_lines(found[0])) >= KILL_AT:
            cache = found[0]
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    output = killed.communicate(timeout=60)[0]
    assert cache is not None and killed.returncode == -signal.SIGKILL, output[-3000:]
    run_dir = cache.parent.parent
    assert not (run_dir / "summary.json").exists()  # killed mid-evaluation
    before = _complete_lines(cache)
    assert KILL_AT <= len(before) < TOTAL

    resumed = _cli("--resume", str(run_dir))
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-3000:]
    after = _complete_lines(cache)
    assert after[: len(before)] == before  # the answers finished before the kill, untouched
    keys = [json.loads(line)["key"] for line in after]
    assert len(keys) == len(set(keys)) == TOTAL  # each answer generated once, before or after
    answers = {json.loads(line)["key"]: json.loads(line)["answer"] for line in after}
    assert answers == {json.loads(x)["key"]: json.loads(x)["answer"] for x in whole_lines}

    summary = json.loads((run_dir / "summary.json").read_text())
    assert _scores(summary) == _scores(whole.summary)
