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
from asklepios_sdk import Loss, LossOutput

from asklepios.engine.numerics import describe_nonfinite

if TYPE_CHECKING:
    from asklepios.engine.loop import StageRunner

__all__ = ["Step", "add_terms"]


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

    def keep(self, result: LossOutput, index: int, batches: int) -> bool:
        """Return whether batch ``index``'s loss counts in the epoch means (``train.nonfinite``).

        A non-finite batch is counted in ``runner.nonfinite_batches`` and handed to the guard,
        which raises (``stop``) or logs the first of the epoch.
        """
        runner = self.runner
        nonfinite = self.nonfinite
        if self.backward_calls == 0:  # a trainer that back-propagates on its own
            nonfinite = not runner.guard.is_finite(result.total)
        if not nonfinite:
            return True
        runner.nonfinite_batches += 1
        message = describe_nonfinite(
            stage=runner.stage,
            epoch=self.epoch,
            epochs=runner.config.train.epochs,
            step=runner.global_step if self.stepped else runner.global_step + 1,
            batch=index,
            batches=batches,
            terms=result.detached_terms(),
            learning_rates={k: o.param_groups[0]["lr"] for k, o in self.optimizers.items()},
            mode=runner.guard.mode,
            stage_dir=runner.stage_dir,
        )
        return runner.guard.handle(message, runner.nonfinite_batches == 1, runner.progress.log)


def add_terms(sums: dict[str, torch.Tensor], result: LossOutput) -> None:
    """Add a batch's loss terms and total to the epoch's running sums (on the device)."""
    for key, value in result.terms.items():
        if key in sums:
            sums[key].add_(value.detach())
        else:
            sums[key] = value.detach().float().clone()
    sums["loss"].add_(result.total.detach())
