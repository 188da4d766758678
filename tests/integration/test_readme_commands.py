"""Every command in the root README's code blocks runs, against a tiny config (docs kept honest).

Each line of a ``bash`` block is one command. It runs as written, in a fresh folder, with only
these substitutions (so that it takes seconds and needs nothing the README does not say):

* ``examples/configs/quickstart.yaml`` and ``cfg.yaml`` -> a tiny config named ``quickstart``
  (the bundled digits, an MLP, two epochs, two stages) writing into ``runs/``;
* ``runs/quickstart-20261128-101500`` and ``runs/digits-mlp`` -> the run the first ``asklepios
  run`` line made; ``new_images/`` -> a folder of digit images;
* ``make TARGET`` -> ``make -n TARGET`` in the repository (the target exists and expands; running
  the demo or the whole suite from inside the suite is not the point);
* ``asklepios`` and ``torchrun`` -> the console scripts next to this interpreter.

The ``yaml`` block of the Configs section is validated as a config file (with the ``extends``
parent it names). The ``python`` block is run by ``tests/core/test_api.py``; ``text`` blocks show
output and synopses, not commands.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = """\
name: quickstart
seed: 0
output_dir: runs
data:
  dataset: {type: core.digits, imbalance_ratio: 5, test_per_class: 20}
  loader: {batch_size: 32}
model:
  backbone: {type: core.mlp, hidden: [32]}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 2, device: cpu}
stages:
  - name: representation
  - name: classifier
    init_from: {stage: representation}
    freeze: ["body.*"]
    train: {epochs: 1}
"""


def blocks(language: str) -> list[str]:
    """Return the code blocks of the root README fenced as ``language``."""
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def commands() -> list[str]:
    """Return every command line of the README's bash blocks, comments removed."""
    lines = [line for block in blocks("bash") for line in block.splitlines()]
    return [c for c in (re.sub(r"\s+#.*$", "", line).strip() for line in lines) if c]


def _images(folder: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir()
    for i, image in enumerate(load_digits().images[:6]):
        Image.fromarray((image * 16).clip(0, 255).astype("uint8"), mode="L").save(
            folder / f"{i}.png"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # torchrun's default port 29500 may be taken by any other job on the machine; PET_MASTER_PORT
    # moves it without changing the command as the README writes it
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PET_MASTER_PORT": str(_free_port())}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_readme_shows_commands_of_every_kind() -> None:
    found = commands()
    assert {"make demo", "make test"} <= set(found)
    for command in ("run", "report", "record check", "predict", "export", "compare"):
        assert any(c.startswith(f"asklepios {command}") for c in found), command
    assert any(c.startswith("torchrun ") for c in found)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    _images(tmp_path / "new_images")
    run_dir: str | None = None
    failures = []
    for command in commands():
        line = command.replace("examples/configs/quickstart.yaml", "tiny.yaml")
        line = re.sub(r"(?<![\w/.])cfg\.yaml", "tiny.yaml", line)
        line = line.replace("new_images/", f"{tmp_path / 'new_images'}/")
        if run_dir is not None:
            line = line.replace("runs/quickstart-20261128-101500", run_dir)
            line = line.replace("runs/digits-mlp", run_dir)
        argv = shlex.split(line)
        cwd = tmp_path
        if argv[0] == "make":
            argv, cwd = ["make", "-n", *argv[1:]], ROOT
        elif argv[0] in ("asklepios", "torchrun"):
            argv[0] = str(BIN / argv[0])
        else:
            failures.append(f"{command}: not a command this test knows how to run")
            continue
        if "runs/quickstart-20261128-101500" in line or "runs/digits-mlp" in line:
            failures.append(f"{command}: no run made before it")
            continue
        done = _run(argv, cwd)
        if done.returncode != 0:
            output = (done.stdout[-1000:] + done.stderr[-1500:]).strip()
            failures.append(f"{command} -> exit {done.returncode}\n{output}")
        if run_dir is None and argv[1:2] == ["run"] and done.returncode == 0:
            run_dir = str(min((tmp_path / "runs").iterdir()).relative_to(tmp_path))
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_readme_config_example_validates(tmp_path: Path) -> None:
    (example,) = blocks("yaml")
    parent = re.search(r"^extends: (\S+)", example, flags=re.M)
    assert parent, "the example shows extends"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / parent[1]).resolve().write_text("output_dir: runs\n")
    (tmp_path / "configs" / "lt.yaml").write_text(example)
    done = _run([str(BIN / "asklepios"), "validate", "configs/lt.yaml", "--deep"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
