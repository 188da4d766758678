"""Event/censored class-balancing sampler (``unisurv.event_balanced``)."""

from __future__ import annotations

import numpy as np
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.components import ShardedSampler

from asklepios_unisurv._balance import balanced_indices
from asklepios_unisurv.params import EventBalancedSamplerParams

__all__ = ["EventBalancedSampler"]


class EventBalancedSampler(ShardedSampler):
    """Oversample the minority of events vs censored subjects in the training split.

    Events and censored subjects are drawn equally often by resampling one class with
    replacement; the event indicators come from the training facts (``DataFacts.events``). Each
    epoch yields ``2 * n_majority`` indices (``2 * n_censored`` with ``direction='events'``):
    every row of the kept class once plus as many resampled rows of the other class.

    Raises:
        ComponentError: the facts carry no event indicators, or not one per training sample.
    """

    def __init__(self, params: EventBalancedSamplerParams, ctx: BuildContext) -> None:
        events = _training_events(ctx)
        super().__init__(len(events), seed=ctx.seed, rank=ctx.rank, world_size=ctx.world_size)
        self.params = params
        self.events = events
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


def _training_events(ctx: BuildContext) -> np.ndarray:
    """Return the training split's event indicators from the facts, checked against its size."""
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
    return np.asarray(events, dtype=np.int64)
