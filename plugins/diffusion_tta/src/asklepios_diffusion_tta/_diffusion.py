"""Private Gaussian-diffusion arithmetic: linear schedule, respacing, q-sample, posterior.

Follows OpenAI guided-diffusion (``gaussian_diffusion.py``, ``respace.py``), which DDA's released
code uses: the respaced process keeps the original ᾱ at the kept indices and recomputes β from it;
the ε-network is always called with the *original* timestep index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DiffusionSchedule",
    "linear_betas",
    "lowpass",
    "resize_right_matrix",
    "space_timesteps",
]

VarianceType = Literal["fixed_small", "fixed_large", "learned_range"]
LowpassFilter = Literal["bicubic", "resize_right"]


def linear_betas(
    num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> np.ndarray:
    """Return the linear β schedule (float64) of DDPM with ``num_steps`` steps."""
    return np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)


def space_timesteps(num_steps: int, section_counts: str | int | Sequence[int]) -> list[int]:
    """Return the kept original indices of guided-diffusion's ``space_timesteps``.

    ``section_counts`` is a count (``100``) or comma-separated counts per equal section
    (``"10,15,20"``); within a section of ``size`` steps, ``count`` indices are taken at
    ``round(i·(size−1)/(count−1))`` with Python's rounding, accumulated as in the reference.
    """
    if isinstance(section_counts, str):
        counts = [int(part) for part in section_counts.split(",")]
    elif isinstance(section_counts, int):
        counts = [section_counts]
    else:
        counts = [int(c) for c in section_counts]
    size_per = num_steps // len(counts)
    extra = num_steps % len(counts)
    start = 0
    kept: list[int] = []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide a section of {size} steps into {count}")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(kept))


@dataclass(frozen=True)
class DiffusionSchedule:
    """A (respaced) DDPM process: per respaced index t, ᾱ_t, β_t and the original index."""

    betas: np.ndarray
    timestep_map: np.ndarray

    @classmethod
    def respaced(
        cls, base_betas: np.ndarray, section_counts: str | int | Sequence[int]
    ) -> DiffusionSchedule:
        """Keep the indices of :func:`space_timesteps` and recompute β so ᾱ matches there."""
        kept = space_timesteps(len(base_betas), section_counts)
        base_cumprod = np.cumprod(1.0 - base_betas)
        betas, last = [], 1.0
        for index in kept:
            betas.append(1.0 - base_cumprod[index] / last)
            last = base_cumprod[index]
        return cls(np.asarray(betas, dtype=np.float64), np.asarray(kept, dtype=np.int64))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    @property
    def alphas_cumprod_prev(self) -> np.ndarray:
        return np.append(1.0, self.alphas_cumprod[:-1])

    @property
    def posterior_variance(self) -> np.ndarray:
        ac, prev = self.alphas_cumprod, self.alphas_cumprod_prev
        return self.betas * (1.0 - prev) / (1.0 - ac)

    @property
    def posterior_log_variance_clipped(self) -> np.ndarray:
        var = self.posterior_variance
        return (
            np.log(np.append(var[1], var[1:])) if len(var) > 1 else np.log(np.maximum(var, 1e-20))
        )

    def _at(self, values: np.ndarray, t: int, like: Tensor) -> Tensor:
        return torch.as_tensor(float(values[t]), dtype=like.dtype, device=like.device)

    def q_sample(self, x0: Tensor, t: int, noise: Tensor) -> Tensor:
        """Return x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε at respaced index ``t``."""
        ac = self.alphas_cumprod[t]
        return float(np.sqrt(ac)) * x0 + float(np.sqrt(1.0 - ac)) * noise

    def predict_x0(self, x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        """Return x̂_0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t."""
        ac = self.alphas_cumprod[t]
        return float(np.sqrt(1.0 / ac)) * x_t - float(np.sqrt(1.0 / ac - 1.0)) * eps

    def posterior_mean(self, x0: Tensor, x_t: Tensor, t: int) -> Tensor:
        """Return the mean of q(x_{t−1} | x_t, x0)."""
        ac, prev, beta = self.alphas_cumprod[t], self.alphas_cumprod_prev[t], self.betas[t]
        coef1 = beta * np.sqrt(prev) / (1.0 - ac)
        coef2 = (1.0 - prev) * np.sqrt(1.0 - beta) / (1.0 - ac)
        return float(coef1) * x0 + float(coef2) * x_t

    def model_log_variance(
        self, t: int, kind: VarianceType, v: Tensor | None, like: Tensor
    ) -> Tensor:
        """Return log Σ_θ at ``t``: fixed small/large, or interpolated by ``v`` ∈ [−1, 1]."""
        if kind == "fixed_small":
            return self._at(self.posterior_log_variance_clipped, t, like)
        if kind == "fixed_large":
            large = np.log(np.append(self.posterior_variance[1], self.betas[1:]))
            return self._at(large, t, like)
        if v is None:
            raise ValueError("learned_range variance needs the model's variance channels")
        min_log = self._at(self.posterior_log_variance_clipped, t, like)
        max_log = self._at(np.log(self.betas), t, like)
        frac = (v + 1) / 2
        return frac * max_log + (1 - frac) * min_log


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel (a = −0.5), support [−2, 2]."""
    ax = np.abs(x)
    inner = (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


@lru_cache(maxsize=64)
def resize_right_matrix(in_size: int, out_size: int, scale: float) -> np.ndarray:
    """Return the ``(out_size, in_size)`` weights of ``resize_right``'s antialiased cubic resize.

    ``resize_right`` (Shocher et al., the resizer DDA's guidance calls with its defaults) maps
    output pixel ``o`` to ``o/s + (in − 1)/2 − (out − 1)/(2s)``; when down-scaling (``s < 1``) the
    cubic kernel is stretched to ``s·cubic(s·x)`` on a support of ``4/s``. Each output pixel's
    weights are normalised over its whole field of view, then the taps that fall outside the
    image are dropped: ``pad_mode='constant'`` pads with zeros, which pulls border pixels
    towards 0.
    """
    eps = float(np.finfo(np.float32).eps)
    grid = np.arange(out_size) / scale + (in_size - 1) / 2 - (out_size - 1) / (2 * scale)
    support = 4.0 if scale >= 1 else 4.0 / scale
    left = np.ceil(grid - support / 2 - eps).astype(np.int64)
    taps = left[:, None] + np.arange(math.ceil(support - eps))[None]
    distance = grid[:, None] - taps
    weights = _cubic(distance) if scale >= 1 else scale * _cubic(scale * distance)
    sums = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(sums == 0, 1.0, sums)
    matrix = np.zeros((out_size, in_size))
    inside = (taps >= 0) & (taps < in_size)
    rows = np.broadcast_to(np.arange(out_size)[:, None], taps.shape)
    np.add.at(matrix, (rows[inside], taps[inside]), weights[inside])
    return matrix


def _resize_right(x: Tensor, size: tuple[int, int], scale: float) -> Tensor:
    mh = resize_right_matrix(x.shape[-2], size[0], scale)
    mw = resize_right_matrix(x.shape[-1], size[1], scale)
    th = torch.as_tensor(mh, dtype=x.dtype, device=x.device)
    tw = torch.as_tensor(mw, dtype=x.dtype, device=x.device)
    return th @ x @ tw.T


def lowpass(x: Tensor, factor: int, method: LowpassFilter = "bicubic") -> Tensor:
    """Apply φ_D: resize by 1/D, then by D back to the size.

    ``bicubic`` (default): torch's antialiased bicubic down-sampling and bicubic up-sampling with
    clamped borders. ``resize_right``: DDA's filter, ``resize_right``'s antialiased cubic both
    ways with zero padding at the borders, to ``int(H/D)`` and back with scale factors 1/D and D
    exactly as DDA's ``gaussian_diffusion.py`` calls it.
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if method == "resize_right":
        small = _resize_right(x, (int(h / factor), int(w / factor)), 1.0 / factor)
        return _resize_right(small, (h, w), float(factor))
    small = F.interpolate(
        x,
        size=(max(1, h // factor), max(1, w // factor)),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
