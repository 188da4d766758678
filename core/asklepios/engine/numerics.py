"""Non-finite training losses: found at the first occurrence, before they reach the weights.

:class:`NonFiniteGuard` checks every loss a trainer back-propagates (all ranks agree on the
answer, so they stop or skip together). ``train.nonfinite`` chooses what follows: ``stop`` raises
:class:`NonFiniteLossError` (exit 1) before the update, so the model never holds NaN weights and
the last epoch checkpoint stays the resume point; ``skip_batch`` drops the optimiser step whose
batch went non-finite; ``warn`` reports it and trains on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from asklepios_sdk import AsklepiosError

from asklepios.engine.checkpoint import epoch_checkpoints
from asklepios.engine.distributed import DistInfo

__all__ = ["NonFiniteGuard", "NonFiniteLossError", "describe_nonfinite"]


class NonFiniteLossError(AsklepiosError):
    """A training loss was NaN or infinite and ``train.nonfinite`` is ``stop``."""


class NonFiniteGuard:
    """Decide whether a loss is finite on every rank (one sync, one all-reduce under DDP).

    Args:
        mode: ``stop``, ``skip_batch`` or ``warn`` (``train.nonfinite``).
        dist: rank information; device: where losses live.
    """

    def __init__(self, mode: str, dist: DistInfo, device: torch.device) -> None:
        self.mode = mode
        self.dist = dist
        self.device = device

    @property
    def holds_back(self) -> bool:
        """Whether a non-finite loss must not reach the weights (``stop`` and ``skip_batch``)."""
        return self.mode != "warn"

    def is_finite(self, loss: torch.Tensor) -> bool:
        """Return whether ``loss`` is finite here and on every other rank."""
        flag = torch.isfinite(loss.detach()).all().to(device=self.device, dtype=torch.int32)
        if self.dist.enabled:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def handle(self, message: str, first: bool, log: Callable[[str], None]) -> bool:
        """Act on a non-finite batch described by ``message``; return whether it counts.

        ``stop`` raises :class:`NonFiniteLossError`; ``skip_batch`` and ``warn`` log the first
        of an epoch (metrics.jsonl counts them all), and only ``warn`` counts it in the means.
        """
        if self.mode == "stop":
            raise NonFiniteLossError(message)
        if first:
            action = "skipped" if self.mode == "skip_batch" else "trained on"
            log(f"warning: {message}; {action} (train.nonfinite={self.mode})")
        return self.mode == "warn"


def _value(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def describe_nonfinite(
    *,
    stage: str,
    epoch: int,
    epochs: int,
    step: int,
    batch: int,
    batches: int,
    terms: Mapping[str, float],
    learning_rates: Mapping[str, float],
    mode: str,
    stage_dir: Path,
) -> str:
    """Return the one-paragraph message for a non-finite loss: where, which terms, what next."""
    bad = [name for name, value in terms.items() if not math.isfinite(value)]
    values = ", ".join(f"{name}={_value(value)}" for name, value in terms.items())
    rates = ", ".join(f"{name} {_value(lr)}" for name, lr in learning_rates.items())
    where = (
        f"stage {stage}, epoch {epoch + 1}/{epochs}, step {step} "
        f"(batch {batch + 1} of {batches}): non-finite training loss"
    )
    terms_text = (
        f"non-finite: {', '.join(bad)}" if bad else "finite on this rank; another rank's was not"
    )
    text = f"{where} ({terms_text}; {values}) at learning rate {rates or 'n/a'}"
    if mode == "stop":
        found = epoch_checkpoints(stage_dir)
        resume = (
            f"the last good checkpoint is {found[0]}"
            if found
            else f"no epoch of stage {stage} finished, so it has no checkpoint yet"
        )
        text += (
            f". The run stopped before the update (train.nonfinite=stop); {resume}. "
            "Lower optimizer.lr, set train.grad_clip, or choose "
            "--set train.nonfinite=skip_batch (or warn)"
        )
    return text
