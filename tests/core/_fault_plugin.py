"""An in-memory test plugin ``fault``: kills the run at named points, and faulty components.

Kill points (``FAULT_KILL_AT``): ``stage_start:<stage>``, ``epoch_start:<stage>:<epoch>``,
``evaluation_end:<stage>:val:<epoch>``, ``evaluation_end:<stage>:test``, ``stage_end:<stage>``
and ``run_end``. At a point the process sends itself SIGKILL, as a crash or an OOM killer
would; at ``run_end`` it first leaves a half-written temporary ``summary.json`` behind, as a
kill in the middle of ``write_atomic`` does (the target keeps its old content or stays absent,
and the temporary file remains). The engine holds no test code: all of it is here.
"""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Any

from asklepios_sdk import Params, hookimpl
from pydantic import Field

KILL_ENV = "FAULT_KILL_AT"


class BatchNormMLPParams(Params):
    """Params of ``fault.bn_mlp``."""

    hidden: int = Field(32, description="Width of the hidden layer.")


class NonFiniteLossParams(Params):
    """Params of ``fault.nonfinite_loss``."""

    at_steps: list[int] = Field(default_factory=list, description="Batches (0-based) made NaN.")
    value: float = Field(float("nan"), description="What the loss becomes there.")


def _kill_at(point: str) -> None:
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def register_backbones(register: Any) -> None:
    register("bn_mlp", "_fault_components:BatchNormMLP", BatchNormMLPParams)


@hookimpl
def register_losses(register: Any) -> None:
    register("nonfinite_loss", "_fault_components:NonFiniteLoss", NonFiniteLossParams)


@hookimpl
def stage_start(run: Any, stage: str) -> None:
    _kill_at(f"stage_start:{stage}")


@hookimpl
def epoch_start(run: Any, epoch: int) -> None:
    _kill_at(f"epoch_start:{run.stage}:{epoch}")


@hookimpl
def evaluation_end(run: Any, split: str, metrics: Any) -> None:
    _kill_at(f"evaluation_end:{run.stage}:{split}" + (f":{run.epoch}" if split == "val" else ""))


@hookimpl
def stage_end(run: Any, stage: str, summary: Any) -> None:
    _kill_at(f"stage_end:{stage}")


@hookimpl
def run_end(run: Any, summary: Any) -> None:
    if run.is_main and os.environ.get(KILL_ENV) == "run_end":  # named as write_atomic names it
        fd, _ = tempfile.mkstemp(prefix=".summary.json.", suffix=".tmp.json", dir=run.output_dir)
        os.write(fd, b'{"name": "cut sho')
        os.close(fd)
    _kill_at("run_end")
