"""Built-in trainer ``core.supervised``: forward, loss, backward, step."""

from __future__ import annotations

from asklepios_sdk import Batch, BuildContext, EmptyParams, LossOutput, StepContext, Trainer

__all__ = ["SupervisedTrainer"]


class SupervisedTrainer(Trainer):
    """Run one supervised step: forward under autocast, loss terms, backward and optimiser step."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        self.params = params

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        with step.autocast():
            outputs = step.model(batch)
            loss = step.loss(outputs, batch)
        step.backward(loss.total)
        step.step()
        return loss
