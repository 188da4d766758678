"""torch.distributed set-up under torchrun, sharding samplers, and rank-aware reductions."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from asklepios_sdk import ShardedSampler

__all__ = [
    "DistInfo",
    "EvalShardSampler",
    "ShardingWrapper",
    "all_reduce_mean",
    "barrier",
    "ensure_sharded",
    "init_distributed",
    "resolve_device",
]


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (``0, 1, 0`` without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """Return the device for ``"auto"`` (CUDA when present, else CPU) or the one requested."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        requested = f"cuda:{local_rank}"
    return torch.device(requested)


def init_distributed(device_request: str) -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), resolve_device(device_request)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_request, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank), device


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(
    values: Mapping[str, float], info: DistInfo, device: torch.device
) -> dict[str, float]:
    """Average scalar values over ranks (identity in a single process)."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= info.world_size
    return dict(zip(keys, tensor.tolist(), strict=True))


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
