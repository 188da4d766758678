"""Built-in training samplers: a seeded shuffle (the default) and the dataset order."""

from __future__ import annotations

import numpy as np
from asklepios_sdk import BuildContext, EmptyParams, ShardedSampler

__all__ = ["RandomSampler", "SequentialSampler"]


class RandomSampler(ShardedSampler):
    """Shuffle the training split each epoch from ``seed + epoch``, sharded across ranks."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(
            ctx.data.num_samples, seed=ctx.seed, rank=ctx.rank, world_size=ctx.world_size
        )

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return generator.permutation(self.num_samples)


class SequentialSampler(ShardedSampler):
    """Visit the training split in dataset order every epoch, sharded across ranks."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(
            ctx.data.num_samples, seed=ctx.seed, rank=ctx.rank, world_size=ctx.world_size
        )

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return np.arange(self.num_samples)
