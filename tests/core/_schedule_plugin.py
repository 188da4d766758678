"""An in-memory test plugin ``sched``: a trainer taking three optimiser steps per batch."""

from __future__ import annotations

from typing import Any

from asklepios_sdk import BuildContext, EmptyParams, LossOutput, StepContext, Trainer, hookimpl

LEARNING_RATES: list[tuple[int, float]] = []
"""(epoch, learning rate of ``main``) at every optimiser step of :class:`ThreeStepTrainer`."""


class ThreeStepTrainer(Trainer):
    """Take three forward/backward/step rounds per batch (like one step per video frame)."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def train_step(self, step: StepContext, batch: Any) -> LossOutput:
        loss = None
        for _ in range(3):
            LEARNING_RATES.append((self.epoch, step.optimizers["main"].param_groups[0]["lr"]))
            loss = step.loss(step.model(batch), batch)
            step.backward(loss.total)
            step.step()
        assert loss is not None
        return loss


@hookimpl
def register_trainers(register: Any) -> None:
    register("three_steps", "_schedule_plugin:ThreeStepTrainer", EmptyParams)
