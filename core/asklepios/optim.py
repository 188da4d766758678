"""Optimizers from ``torch.optim`` by name and learning-rate schedules with warm-up.

A schedule advances per optimiser step (``interval: step``) or once per epoch (``interval:
epoch``); a per-epoch schedule ignores the step calls, so a trainer that takes several optimiser
steps per batch cannot move it more than once per epoch.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from asklepios_sdk import AsklepiosError

__all__ = ["EpochLambdaLR", "OptimError", "build_optimizer", "build_schedule", "lr_factor"]


class OptimError(AsklepiosError):
    """An optimizer or schedule setting is unknown or invalid."""


def _optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    return {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }


def build_optimizer(
    params: Sequence[Any], config: object, where: str = "optimizer"
) -> torch.optim.Optimizer:
    """Build the ``torch.optim`` class named ``config.name`` with its keyword arguments checked.

    ``config`` is an :class:`~asklepios.config.model.OptimizerConfig`: ``name``, ``lr``,
    ``weight_decay`` and extra keys passed as keyword arguments after checking them against the
    class's signature. ``params`` is a list of parameters or of torch param-group dicts; a group's
    ``lr_scale`` (kept in the group) sets its learning rate to ``lr_scale * config.lr``.
    """
    classes = _optimizer_classes()
    name = str(config.name).lower()  # type: ignore[attr-defined]
    if name not in classes:
        raise OptimError(
            f"{where}.name: unknown optimizer {config.name!r}; "  # type: ignore[attr-defined]
            f"torch.optim has {', '.join(sorted(classes))}"
        )
    cls = classes[name]
    kwargs = {"lr": config.lr, "weight_decay": config.weight_decay, **config.kwargs}  # type: ignore[attr-defined]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise OptimError(
            f"{where}: {cls.__name__} does not accept {unknown}; it accepts {sorted(accepted)}"
        )
    params = [
        {**item, "lr": float(item["lr_scale"]) * config.lr}  # type: ignore[attr-defined]
        if isinstance(item, dict) and "lr_scale" in item
        else item
        for item in params
    ]
    if not params:
        raise OptimError(
            f"{where}: no trainable parameters (all frozen?); check the stage's 'freeze' patterns"
        )
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as err:
        raise OptimError(f"{where}: {cls.__name__} rejected its arguments: {err}") from err


def lr_factor(
    config: object, steps_per_epoch: int, epochs: int, min_factor: float = 0.0
) -> Callable[[int], float]:
    """Return ``step -> factor`` of the base learning rate for a ``ScheduleConfig``.

    Warm-up rises linearly from ``warmup_start_factor`` to 1 over ``warmup_epochs``; then
    ``constant`` keeps 1, ``cosine`` decays to ``min_factor`` (``min_lr / lr``) by the
    last step, ``step`` multiplies by ``gamma`` every ``step_size`` epochs, ``multistep`` at
    each milestone epoch, and ``linear`` (pix2pixHD) keeps 1 until ``constant_epochs`` (counted
    from the first step; warm-up, if longer, comes first) and then falls linearly to
    ``min_factor`` by the last step.
    """
    name = config.name  # type: ignore[attr-defined]
    warmup = round(config.warmup_epochs * steps_per_epoch)  # type: ignore[attr-defined]
    start = float(config.warmup_start_factor)  # type: ignore[attr-defined]
    total = max(1, steps_per_epoch * epochs)
    gamma = float(config.gamma)  # type: ignore[attr-defined]
    milestones = sorted(config.milestones)  # type: ignore[attr-defined]
    constant = max(warmup, round(config.constant_epochs * steps_per_epoch))  # type: ignore[attr-defined]

    def factor(step: int) -> float:
        if step < warmup:
            return start + (1.0 - start) * step / warmup
        epoch = step // max(1, steps_per_epoch)
        if name == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        if name == "step":
            return gamma ** (epoch // config.step_size)  # type: ignore[attr-defined]
        if name == "multistep":
            return gamma ** sum(1 for m in milestones if epoch >= m)
        if name == "linear":
            progress = min(1.0, max(0.0, (step - constant) / max(1, total - constant)))
            return 1.0 - (1.0 - min_factor) * progress
        return 1.0

    return factor


class EpochLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` over epochs: ``set_epoch`` sets the rate, optimiser steps leave it alone.

    The step context calls ``step()`` after every optimiser step; those calls do nothing here. The
    training loop calls ``set_epoch(epoch)`` at the start of every epoch, which sets each group's
    rate to ``base_lr * factor(epoch)``; so the rate depends on the epoch only, however many
    optimiser steps a trainer takes per batch, and a resumed run gets the same rate.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        self._by_epoch = False
        super().__init__(optimizer, factor)
        self._by_epoch = True

    def step(self, epoch: int | None = None) -> None:
        """Do nothing once built (the first call, made by the constructor, sets epoch 0)."""
        if not self._by_epoch:
            super().step()

    def set_epoch(self, epoch: int) -> None:
        """Set every group's rate to that of ``epoch`` (0-based)."""
        self.last_epoch = epoch
        for group, base, factor in zip(
            self.optimizer.param_groups, self.base_lrs, self.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_schedule(
    optimizer: torch.optim.Optimizer, config: object, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Return the ``LambdaLR`` following :func:`lr_factor` (decays end at ``min_lr``).

    With ``config.interval == "step"`` it advances per optimiser step; with ``"epoch"`` it is an
    :class:`EpochLambdaLR` whose factor is taken per epoch (warm-up and decay counted in whole
    epochs). ``min_lr`` is relative to the configured rate, so a group with ``lr_scale`` ends at
    ``lr_scale * min_lr``.
    """
    base_lr = optimizer.defaults["lr"]
    min_factor = float(config.min_lr) / base_lr if base_lr > 0 else 0.0  # type: ignore[attr-defined]
    if getattr(config, "interval", "step") == "epoch":
        return EpochLambdaLR(optimizer, lr_factor(config, 1, epochs, min_factor))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config, steps_per_epoch, epochs, min_factor)
    )
