"""Split samplers and evaluation splits across ranks: every rank sees its share of one order.

Below both :mod:`asklepios.build` (which wraps a configured sampler) and :mod:`asklepios.engine`
(which shards evaluation splits), so neither imports the other for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from asklepios_sdk import ShardedSampler

__all__ = ["EvalShardSampler", "ShardingWrapper", "ensure_sharded"]


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
