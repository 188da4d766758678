"""mypy checks the SDK, and through its types a plugin's hook functions and component classes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[1]

GOOD_HOOKS = """
from asklepios_sdk import Register, hookimpl


@hookimpl
def register_losses(register: Register) -> None:
    from fake_params import FocalLossParams

    register("focal", "fake_plugins:FocalLoss", FocalLossParams, doc="Focal loss.")
"""

BAD_HOOKS = """
from asklepios_sdk import Loss, LossOutput, Register, hookimpl


class BadLoss(Loss):
    def forward(self, outputs: int) -> LossOutput:
        raise ValueError(outputs)


@hookimpl
def register_losses(register: Register) -> None:
    register("bad", BadLoss, params=dict)
"""


def _mypy(*paths: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--config-file", str(SDK / "pyproject.toml")]
    command += ["--cache-dir", str(cache), *map(str, paths)]
    env_path = str(SDK / "tests")
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={"MYPYPATH": env_path, "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
def test_mypy_accepts_sdk_and_typed_plugins_rejects_bad_signatures(tmp_path: Path) -> None:
    cache = tmp_path / "mypy_cache"
    (tmp_path / "good_hooks.py").write_text(textwrap.dedent(GOOD_HOOKS))
    good = _mypy(SDK / "src" / "asklepios_sdk", tmp_path / "good_hooks.py", cache=cache)
    assert good.returncode == 0, good.stdout + good.stderr
    (tmp_path / "bad_hooks.py").write_text(textwrap.dedent(BAD_HOOKS))
    bad = _mypy(tmp_path / "bad_hooks.py", cache=cache)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "[override]" in bad.stdout  # forward(outputs, batch) signature of Loss
    assert 'expected "type[Params]"  [arg-type]' in bad.stdout  # the Register protocol
