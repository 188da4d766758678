"""Event/censored class-balancing sampler (``unisurv.event_balanced``)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from asklepios_sdk import BuildContext, ComponentError, Params
from asklepios_sdk.components import ShardedSampler
from pydantic import Field

from asklepios_unisurv._balance import balanced_indices

__all__ = ["EventBalancedParams", "EventBalancedSampler", "build_event_balanced"]


class EventBalancedParams(Params):
    """Options of the event/censored oversampler (UniSurv ``unbalance_solve``)."""

    direction: Literal["minority", "events"] = Field(
        "minority",
        description=(
            "'minority': oversample the rarer of events/censored. 'events': the original code, "
            "always resample the events to the censored count (down-samples when events dominate)."
        ),
    )
    mode: Literal["fixed", "per_epoch"] = Field(
        "fixed",
        description="'fixed': one resample at set-up (as the code), reshuffled each epoch; "
        "'per_epoch': a fresh resample every epoch.",
    )
    seed: int = Field(42, description="random_state of the 'fixed' resample (the code's 42).")


class EventBalancedSampler(ShardedSampler):
    """Draw events and censored subjects equally often, by resampling one class with replacement.

    Each epoch yields ``2 * n_majority`` indices (``2 * n_censored`` with ``direction='events'``):
    every row of the kept class once plus as many resampled rows of the other class.
    """

    def __init__(self, events: np.ndarray, params: EventBalancedParams, ctx: BuildContext) -> None:
        super().__init__(len(events), seed=ctx.seed, rank=ctx.rank, world_size=ctx.world_size)
        self.params = params
        self.events = np.asarray(events, dtype=np.int64)
        self.rows = balanced_indices(self.events, params.direction, params.seed)
        self.event_rows = np.flatnonzero(self.events == 1)
        self.censored_rows = np.flatnonzero(self.events == 0)

    def epoch_length(self) -> int:
        return len(self.rows)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        if self.params.mode == "fixed":
            return generator.permutation(self.rows)
        kept_count = len(self.rows) // 2
        drawn_events = self.params.direction == "events" or len(self.event_rows) <= len(
            self.censored_rows
        )
        kept, drawn = (
            (self.censored_rows, self.event_rows)
            if drawn_events
            else (self.event_rows, self.censored_rows)
        )
        rows = np.concatenate([kept, generator.choice(drawn, size=kept_count, replace=True)])
        return generator.permutation(rows)


def build_event_balanced(params: EventBalancedParams, ctx: BuildContext) -> EventBalancedSampler:
    """Oversample the minority of events vs censored subjects in the training split."""
    if ctx.data.events is None:
        raise ComponentError(
            "unisurv.event_balanced needs the training split's event indicators "
            "(DataFacts.events); use it with a survival dataset"
        )
    events = np.asarray(ctx.data.events)
    if ctx.data.num_samples and ctx.data.num_samples != len(events):
        raise ComponentError(
            f"unisurv.event_balanced: the facts list {len(events)} event indicators for a "
            f"training split of {ctx.data.num_samples} samples (a wrapper re-split the data "
            "without updating DataFacts.events); use the dataset's own num_folds/fold instead "
            "of train.folds"
        )
    return EventBalancedSampler(events, params, ctx)
