"""The :class:`~asklepios_sdk.StepContext` a trainer drives for each batch.

``backward`` scales for mixed precision and gradient accumulation and first asks the runner's
:class:`~asklepios.engine.numerics.NonFiniteGuard` whether the loss is finite: unless
``train.nonfinite`` is ``warn``, a non-finite loss is not back-propagated and the optimiser step
of its accumulation window is dropped (gradients zeroed, the schedule still advances), so the
weights never see it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from asklepios_sdk import Loss

if TYPE_CHECKING:
    from asklepios.engine.loop import StageRunner

__all__ = ["Step"]


class Step:
    """The step context of one epoch; the loop resets the per-batch fields before each batch."""

    loss: Loss
    optimizers: Mapping[str, torch.optim.Optimizer]

    def __init__(self, runner: StageRunner, loss: Loss) -> None:
        self.runner = runner
        self.model = runner.train_model
        self.loss = loss
        self.optimizers = runner.optimizers
        self.device = runner.device
        self.epoch = 0
        self.global_step = 0
        self.boundary = True
        self.stepped = False
        self.updated = False
        self.backward_calls = 0
        self.nonfinite = False
        self._held: set[str] = set()  # optimizers whose window saw a non-finite loss

    def start_batch(self, boundary: bool) -> None:
        """Reset what the loop reads after ``train_step``; ``boundary`` ends an accumulation."""
        self.boundary = boundary
        self.stepped = False
        self.updated = False
        self.backward_calls = 0
        self.nonfinite = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.runner.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def backward(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        self.backward_calls += 1
        guard = self.runner.guard
        if not guard.is_finite(loss):
            self.nonfinite = True
            if guard.holds_back:
                self._held.add(optimizer)
                return
        accumulate = self.runner.accumulate
        if accumulate > 1:
            loss = loss / accumulate
        scaler = self.runner.scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, optimizer: str = "main") -> None:
        if not self.boundary:
            return
        runner = self.runner
        opt = runner.optimizers[optimizer]
        self.stepped = True
        if optimizer in self._held:
            self._held.discard(optimizer)
            opt.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # skipping the update is the point here
                warnings.filterwarnings(
                    "ignore", "Detected call of `lr_scheduler.step", UserWarning
                )
                runner.schedules[optimizer].step()
            return
        scaler = runner.scaler
        if runner.grad_clip is not None:
            if scaler is not None:
                scaler.unscale_(opt)
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, runner.grad_clip)
        if scaler is not None:
            scaler.step(opt)
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        runner.schedules[optimizer].step()
        self.updated = True
