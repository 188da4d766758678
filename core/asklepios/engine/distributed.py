"""torch.distributed set-up under torchrun, rank-aware reductions, and synchronised BatchNorm.

``torch.nn.SyncBatchNorm`` runs only on accelerators (and DDP refuses it on CPU); on CPU
:func:`convert_sync_batchnorm` uses :class:`CPUSyncBatchNorm` instead (two passes over all
ranks: sum and count, then the sum of squared deviations), so 2 CPU ranks normalise each batch
as one process would, up to float summation order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "CPUSyncBatchNorm",
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "batchnorm_layers",
    "convert_sync_batchnorm",
    "init_distributed",
    "leave_process_group",
    "resolve_device",
    "single_sample_problem",
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


def leave_process_group() -> None:
    """Wait for every rank, then leave the process group, before a torchrun process exits.

    A rank that exits while another still talks to it can abort in gloo's teardown
    (``terminate called without an active exception``); a command ends with this instead.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


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


def batchnorm_layers(model: nn.Module) -> list[str]:
    """Return the names of ``model``'s BatchNorm layers (of any dimension, synced or not)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]


class _SumOverRanks(torch.autograd.Function):
    """Sum a tensor over ranks, differentiably.

    Every rank's output is the sum of every rank's input, so each input's gradient is the sum of
    every rank's output gradient: another all-reduce.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm of any dimension whose training statistics span every rank (CPU, gloo).

    In training under a process group of several ranks the batch statistics are those of the
    samples of all ranks together: the mean from the summed values and count, then the biased
    variance from the summed squared deviations (two differentiable all-reduces), and the running
    variance is updated with the unbiased estimate, as ``nn.BatchNorm`` does in one process.
    Otherwise it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or _world_size() < 2:
            return super().forward(input)
        self._check_input_dim(input)
        group = dist.group.WORLD
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        count = input.new_full((1,), input.numel() // max(1, channels))
        totals = _SumOverRanks.apply(torch.cat([input.sum(dims), count]), group)
        n = float(totals[-1].detach())
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got {n:.0f} over all ranks"
            )
        mean = totals[:channels] / n
        centred = input - mean.view(shape)
        var = _SumOverRanks.apply(centred.pow(2).sum(dims), group) / n
        if self.track_running_stats and self.running_mean is not None:
            self._update_running(mean.detach(), var.detach() * (n / (n - 1)))
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running(self, mean: Tensor, unbiased_var: Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(
            unbiased_var.to(self.running_var.dtype), alpha=factor
        )


def _world_size() -> int:
    """Return the number of ranks of the default process group (1 without one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm layer of ``module`` synchronise across ranks, sharing its state.

    ``nn.SyncBatchNorm`` on accelerators, :class:`CPUSyncBatchNorm` on CPU. Parameters and
    buffers stay the same tensors, so optimizers and state-dict keys are unchanged.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, CPUSyncBatchNorm
    ):
        out = CPUSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, device))
    return out


def single_sample_problem(
    layers: list[str], batch_size: int, sampler: Any, distributed: bool
) -> str | None:
    """Say why unsynchronised BatchNorm ``layers`` would see one sample per batch, if they would.

    A last batch of one sample is dropped by the loop; what is left are a batch size of one and
    an epoch of a single sample per rank.
    """
    named = f"the model's BatchNorm layers ({', '.join(layers[:3])}" + (
        ", ...)" if len(layers) > 3 else ")"
    )
    if batch_size == 1:
        return (
            f"data.loader.batch_size is 1, but {named} cannot normalise a single sample in "
            "training; use --set data.loader.batch_size=2 (or more)"
        )
    try:
        samples = len(sampler)
    except TypeError:  # a sampler without a length: the loop's own check still applies
        return None
    if samples == 1:
        per = "each rank" if distributed else "the run"
        return (
            f"the training sampler gives {per} a single sample per epoch, and {named} cannot "
            "normalise one sample in training; use more training data (or fewer ranks)"
        )
    return None
