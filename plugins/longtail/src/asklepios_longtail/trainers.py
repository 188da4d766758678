"""Trainers: ERM with MONICA's compatibility switches, SAM, BBN, and feature collection (NCM)."""

from __future__ import annotations

from typing import Any

import torch
from asklepios_sdk import Batch, BuildContext, ComponentError, LossOutput, StepContext
from asklepios_sdk import Trainer as TrainerBase
from torch import Tensor, nn

from asklepios_longtail.adapters import bbn_alpha
from asklepios_longtail.params import (
    BBNTrainerParams,
    CollectTrainerParams,
    ERMTrainerParams,
    SAMTrainerParams,
    TrainerModeParams,
)
from asklepios_longtail.posthoc import EvaluationTimeAdapter, NCMClassifier

__all__ = [
    "BBNTrainer",
    "CollectTrainer",
    "ERMTrainer",
    "SAMTrainer",
    "sam_rho",
    "split_pairs",
]


def _set_mode(model: nn.Module, epoch: int, params: TrainerModeParams) -> None:
    """Reproduce MONICA's mode leak when asked; evaluation-time adapters stay in train mode."""
    if params.eval_mode_after_epoch0 and epoch >= 1:
        model.eval()
        for module in model.modules():
            if isinstance(module, EvaluationTimeAdapter):
                module.training = True  # only the adapter's own flag, not its children


def _forward(model: nn.Module, batch: Batch, params: TrainerModeParams) -> dict[str, Tensor]:
    outputs = dict(model(batch))
    second = batch.get(params.second_view_key)
    if second is not None:
        view = dict(batch)
        view["image"] = second
        outputs["features_view2"] = model(view)["features"]
    return outputs


class ERMTrainer(TrainerBase):
    """Run one plain step (forward, loss, backward, step) with MONICA's compatibility switches.

    References: MONICA ``main.py:train``.
    """

    def __init__(self, params: ERMTrainerParams, ctx: BuildContext) -> None:
        self.params = params

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        _set_mode(step.model, step.epoch, self.params)
        with step.autocast():
            outputs = _forward(step.model, batch, self.params)
            loss = step.loss(outputs, batch)
        step.backward(loss.total)
        step.step()
        return loss


def sam_rho(
    epoch: int,
    rhos: tuple[float, float, float] = (0.05, 0.1, 0.5),
    bounds: tuple[int, int] = (5, 60),
) -> float:
    """Return SAM's ρ at 0-based ``epoch``: MONICA's 1-based ≤5 / 6–60 / ≥61 schedule."""
    one_based = epoch + 1
    if one_based <= bounds[0]:
        return rhos[0]
    return rhos[1] if one_based <= bounds[1] else rhos[2]


class SAMTrainer(TrainerBase):
    """Run a two-pass sharpness-aware step: ascend to w + ρ g/‖g‖, take the gradient there.

    The base optimiser (the config's ``optimizer``; MONICA: Adam 3e-4) then steps from the
    restored w with the second gradient. ρ follows MONICA's epoch schedule. Needs
    ``train.accumulate: 1``.

    References: Foret et al., ICLR 2021; Rangwani et al., NeurIPS 2022. MONICA
    ``optimizers/SAM.py``.
    """

    def __init__(self, params: SAMTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.rho = sam_rho(0, params.rhos, params.bounds)

    def set_epoch(self, epoch: int) -> None:
        """Set ρ for the epoch about to start."""
        self.rho = sam_rho(epoch, self.params.rhos, self.params.bounds)

    @torch.no_grad()
    def first_step(self, params: list[nn.Parameter]) -> list[Tensor | None]:
        """Move every parameter with a gradient to w + ρ g/‖g‖; return copies of w to restore."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return [None] * len(params)
        norm = torch.norm(torch.stack([g.detach().norm(2) for g in grads]), 2)
        scale = self.rho / (norm + 1e-12)
        saved: list[Tensor | None] = []
        for p in params:
            if p.grad is None:
                saved.append(None)
                continue
            saved.append(p.detach().clone())
            p.add_(p.grad * scale.to(p))
        return saved

    @torch.no_grad()
    def restore(self, params: list[nn.Parameter], saved: list[Tensor | None]) -> None:
        """Put back the saved w bit for bit (MONICA's SAM; w + ε − ε can differ in the last bit)."""
        for p, w in zip(params, saved, strict=True):
            if w is not None:
                p.copy_(w)

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        _set_mode(step.model, step.epoch, self.params)
        params = [p for p in step.model.parameters() if p.requires_grad]
        with step.autocast():
            first = step.loss(_forward(step.model, batch, self.params), batch)
        step.backward(first.total)
        saved = self.first_step(params)
        for optimizer in step.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        with step.autocast():
            second = step.loss(_forward(step.model, batch, self.params), batch)
        step.backward(second.total)
        self.restore(params, saved)
        step.step()
        terms = dict(first.terms)
        terms["sam_perturbed"] = second.total.detach()
        return LossOutput(total=first.total, terms=terms)


def split_pairs(batch: Batch) -> tuple[Batch, Batch]:
    """Split an interleaved batch (a, b, a, b, ...) from ``longtail.bbn_pairs`` into two."""
    size = len(batch["label"])
    half = size // 2
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim > 0 and len(value) == size:
            first[key] = value[0 : 2 * half : 2]
            second[key] = value[1 : 2 * half : 2]
        else:
            first[key] = second[key] = value
    return first, second


class BBNTrainer(TrainerBase):
    """Run BBN's bilateral step on interleaved (uniform, class-balanced) pairs of samples.

    Use with the ``longtail.bbn_pairs`` sampler (which interleaves a shuffled and a
    class-balanced stream; set the loader batch size to twice BBN's) and ``longtail.bbn_head``.
    The loss receives ``label`` = y_a, ``label_b`` = y_b and ``lam`` = α(e).

    References: Zhou et al., CVPR 2020. MONICA ``models/BBN.py``, ``main.py:train``.
    """

    def __init__(self, params: BBNTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.epochs = params.epochs or ctx.epochs
        self.alpha = bbn_alpha(0, self.epochs, params.alpha_schedule)

    def set_epoch(self, epoch: int) -> None:
        """Set α for the epoch about to start."""
        self.alpha = bbn_alpha(epoch, self.epochs, self.params.alpha_schedule)

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        _set_mode(step.model, step.epoch, self.params)
        if len(batch["label"]) < 2:
            raise ComponentError(
                "longtail.bbn needs batches of at least 2 samples (one uniform, one "
                "class-balanced); use the longtail.bbn_pairs sampler with an even batch size"
            )
        first, second = split_pairs(batch)
        first["bbn_b"] = second
        first["bbn_alpha"] = self.alpha
        first["label_b"] = second["label"]
        first["lam"] = torch.tensor(self.alpha, device=first["label"].device)
        with step.autocast():
            outputs = step.model(first)
            loss = step.loss(outputs, first)
        step.backward(loss.total)
        step.step()
        return loss


class CollectTrainer(TrainerBase):
    """Collect training features for ``longtail.ncm`` without optimising anything (KNN stage).

    The model runs in eval mode (as in MONICA); each epoch starts a fresh collection. The stage
    has no optimizer; its reported loss is 0.

    References: MONICA ``main.py`` (``KNN``), ``models/KNNClassifier.py``.
    """

    def __init__(self, params: CollectTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.epoch: int | None = None

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Return no parameter groups: nothing is trained."""
        return {}

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        heads = [m for m in step.model.modules() if isinstance(m, NCMClassifier)]
        if not heads:
            raise ComponentError(
                "longtail.collect found no longtail.ncm adapter in the model; add it under "
                "model.adapters"
            )
        step.model.eval()
        for head in heads:
            if self.epoch != step.epoch:
                head.reset_collection()
            head.collect(batch)
        self.epoch = step.epoch
        zero = torch.zeros((), device=batch["label"].device)
        return LossOutput(total=zero, terms={"collected": zero + len(batch["label"])})
