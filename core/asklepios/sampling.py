"""Split samplers and evaluation splits across ranks: every rank sees its share of one order.

Below both :mod:`asklepios.build` (which wraps a configured sampler and counts the training
batches) and :mod:`asklepios.engine` (which batches the training order and shards evaluation
splits), so neither imports the other for it.

Rank ``r`` of ``k`` takes positions ``r, r + k, ...`` of the epoch's global order, so batch ``i``
of every rank together is batch ``i`` of a single process whose batch is ``k`` times larger.
:class:`TrainBatchSampler` hands each sample its global position, which keys the sample's
augmentation randomness: the same sample at the same position is augmented alike whatever the
number of ranks or DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from asklepios_sdk import ShardedSampler

__all__ = [
    "EvalShardSampler",
    "SampleKey",
    "ShardingWrapper",
    "TrainBatchSampler",
    "count_train_batches",
    "ensure_sharded",
]


class ShardingWrapper(torch.utils.data.Sampler[int]):
    """Shard a sampler that knows nothing of ranks: draw its full order, pad, take every k-th.

    The inner sampler must give the same order on every rank; the engine seeds each rank's
    generators identically, and passes ``set_epoch`` and ``on_evaluation`` through.
    """

    def __init__(self, inner: Any, rank: int, world_size: int, seed: int) -> None:
        self.inner = inner
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def on_evaluation(self, metrics: Mapping[str, Any]) -> None:
        if hasattr(self.inner, "on_evaluation"):
            self.inner.on_evaluation(metrics)

    def state_dict(self) -> dict[str, Any]:
        inner = self.inner.state_dict() if hasattr(self.inner, "state_dict") else {}
        return {"epoch": self.epoch, "inner": inner}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        if hasattr(self.inner, "load_state_dict") and state.get("inner"):
            self.inner.load_state_dict(state["inner"])

    def __len__(self) -> int:
        return math.ceil(len(self.inner) / self.world_size)

    def __iter__(self) -> Iterator[int]:
        generator = getattr(self.inner, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(self.seed + self.epoch)
        order = np.fromiter(iter(self.inner), dtype=np.int64)
        total = len(self) * self.world_size
        if len(order) < total:
            order = np.resize(order, total)
        return iter(order[self.rank : total : self.world_size].tolist())


def ensure_sharded(sampler: Any, rank: int, world_size: int, seed: int) -> Any:
    """Return ``sampler`` if it shards across ranks itself, else a :class:`ShardingWrapper`."""
    if isinstance(sampler, ShardedSampler | ShardingWrapper) or world_size == 1:
        return sampler
    return ShardingWrapper(sampler, rank, world_size, seed)


class EvalShardSampler(torch.utils.data.Sampler[int]):
    """Give rank ``r`` the indices ``r, r + k, ...`` of an evaluation split, without padding.

    Without padding every sample is counted exactly once after the metric states are synced.
    """

    def __init__(self, num_samples: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, num_samples, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


class SampleKey(NamedTuple):
    """What the training loader asks a split for: a sample and where it sits in the epoch.

    ``position`` is the sample's place in the epoch's global order (the same on every rank
    count); ``row`` the sample's index in the split.
    """

    epoch: int
    position: int
    row: int


def count_train_batches(per_rank: int, batch_size: int, drop_last: bool, drop_single: bool) -> int:
    """Return the training batches of one rank's epoch of ``per_rank`` samples.

    ``drop_last`` drops any incomplete last batch; ``drop_single`` drops a last batch of one
    sample when other batches remain (BatchNorm cannot normalise a single sample).
    """
    full, rest = divmod(per_rank, batch_size)
    if rest and not drop_last and not (drop_single and rest == 1 and full > 0):
        return full + 1
    return full


class TrainBatchSampler(torch.utils.data.Sampler[list[SampleKey]]):
    """Batch a rank's share of the training order into lists of :class:`SampleKey`.

    Args:
        sampler: the (sharded) training sampler, yielding split indices.
        batch_size: samples per batch on this rank.
        drop_last: drop any incomplete last batch.
        drop_single: drop a last batch of one sample (see :func:`count_train_batches`).
        rank: this process's rank; world_size: number of processes.
    """

    def __init__(
        self,
        sampler: Any,
        batch_size: int,
        drop_last: bool,
        drop_single: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.drop_single = drop_single
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration's keys carry."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return count_train_batches(
            len(self.sampler), self.batch_size, self.drop_last, self.drop_single
        )

    def __iter__(self) -> Iterator[list[SampleKey]]:
        batches = len(self)
        size, epoch, rank, world = self.batch_size, self.epoch, self.rank, self.world_size
        batch: list[SampleKey] = []
        done = 0
        for j, index in enumerate(self.sampler):
            if done == batches:
                break
            batch.append(SampleKey(epoch, j * world + rank, int(index)))
            if len(batch) == size:
                yield batch
                batch, done = [], done + 1
        if batch and done < batches:
            yield batch
