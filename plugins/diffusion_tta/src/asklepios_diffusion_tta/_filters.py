"""Private batched image filters on torch tensors ``(B, C, H, W)`` shared by the corruptions.

Each helper reproduces the border rule of the library the ImageNet-C code calls (scipy/skimage
``nearest`` and ``reflect``, OpenCV ``BORDER_REFLECT_101``) so that results agree away from
floating-point rounding.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "box_resize_matrix",
    "conv_depthwise",
    "fft_convolve_valid",
    "gaussian_blur",
    "gaussian_kernel1d",
    "pad2d",
    "pad_index",
    "resize_box",
]

PadMode = Literal["nearest", "reflect", "reflect101"]


def pad_index(n: int, before: int, after: int, mode: PadMode, device: torch.device) -> Tensor:
    """Return source indices of a padded axis of length ``n`` (no copy of the data is made).

    ``nearest`` repeats the edge, ``reflect`` is scipy's symmetric rule (``d c b a | a b c d``),
    ``reflect101`` OpenCV's default (``d c b | a b c d``).
    """
    idx = torch.arange(-before, n + after, device=device)
    if mode == "nearest" or n == 1:
        return idx.clamp(0, n - 1)
    if mode == "reflect":
        period = 2 * n
        m = idx.remainder(period)
        return torch.where(m >= n, period - 1 - m, m)
    period = 2 * n - 2
    m = idx.remainder(period)
    return torch.where(m >= n, period - m, m)


def pad2d(x: Tensor, ry: int, rx: int, mode: PadMode) -> Tensor:
    rows = pad_index(x.shape[-2], ry, ry, mode, x.device)
    cols = pad_index(x.shape[-1], rx, rx, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Return scipy's ``gaussian_filter1d`` weights: radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / float(sigma)) ** 2)
    return weights / weights.sum()


def gaussian_blur(
    x: Tensor, sigma: float | tuple[float, float], truncate: float = 4.0, mode: PadMode = "nearest"
) -> Tensor:
    """Blur every channel with a separable Gaussian (skimage ``gaussian``'s defaults)."""
    sy, sx = (sigma, sigma) if isinstance(sigma, int | float) else sigma
    ky = torch.as_tensor(gaussian_kernel1d(sy, truncate), dtype=x.dtype, device=x.device)
    kx = torch.as_tensor(gaussian_kernel1d(sx, truncate), dtype=x.dtype, device=x.device)
    ry, rx = (len(ky) - 1) // 2, (len(kx) - 1) // 2
    b, c, h, w = x.shape
    flat = x.reshape(b * c, 1, h, w)
    flat = F.conv2d(pad2d(flat, ry, 0, mode), ky.view(1, 1, -1, 1))
    flat = F.conv2d(pad2d(flat, 0, rx, mode), kx.view(1, 1, 1, -1))
    return flat.reshape(b, c, h, w)


def fft_convolve_valid(padded: Tensor, kernel: Tensor) -> Tensor:
    """Convolve ``(B, C, Hp, Wp)`` with ``(1 | B, kh, kw)`` kernels by FFT; keep the valid part.

    ``out[b, c, y, x] = Σ_{u,v} kernel[b, u, v] · padded[b, c, y + kh − 1 − u, x + kw − 1 − v]``;
    the circular wrap of the FFT only touches the discarded border, so the result equals direct
    convolution up to rounding. Per-image kernels batch without a Python loop.
    """
    hp, wp = padded.shape[-2:]
    kh, kw = kernel.shape[-2:]
    size = (fast_fft_length(hp), fast_fft_length(wp))  # zero padding: no wrap at all
    spectrum = torch.fft.rfft2(padded, s=size)
    kernel_spectrum = torch.fft.rfft2(kernel.to(padded.dtype), s=size)[:, None]
    full = torch.fft.irfft2(spectrum * kernel_spectrum, s=size)
    return full[..., kh - 1 : hp, kw - 1 : wp]


def fast_fft_length(n: int) -> int:
    """Return the smallest 2^a·3^b·5^c ≥ ``n`` (FFT sizes with large prime factors are slow)."""
    best = next_power_of_2(n)
    five = 1
    while five < best:
        three = five
        while three < best:
            two = three
            while two < n:
                two *= 2
            best = min(best, two)
            three *= 3
        five *= 5
    return best


def conv_depthwise(x: Tensor, kernel: np.ndarray | Tensor, mode: PadMode = "reflect101") -> Tensor:
    """Correlate every channel with one 2-D kernel (OpenCV ``filter2D`` semantics).

    Kernels wider than 7 taps go through the FFT (as OpenCV does for large kernels).
    """
    k = torch.as_tensor(kernel, dtype=x.dtype, device=x.device)
    kh, kw = k.shape
    padded = pad2d(x, kh // 2, kw // 2, mode)
    if max(kh, kw) > 7:
        return fft_convolve_valid(padded, torch.flip(k, dims=(0, 1))[None])
    b, c, h, w = x.shape
    flat = padded.reshape(b * c, 1, h + kh - 1, w + kw - 1)
    return F.conv2d(flat, k.view(1, 1, kh, kw)).reshape(b, c, h, w)


def box_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Return the ``(n_out, n_in)`` weights of PIL's BOX filter.

    PIL gives weight 1 to every input pixel whose centre lies in ``[o·s, (o+1)·s)`` (``s`` the
    scale) and normalises; no fractional weights at the borders of the box.
    """
    scale = n_in / n_out
    centers = (np.arange(n_out) + 0.5) * scale
    offsets = (np.arange(n_in)[None, :] - centers[:, None] + 0.5) / scale
    weights = ((offsets >= -0.5) & (offsets < 0.5)).astype(np.float64)
    return weights / weights.sum(axis=1, keepdims=True)


def _box_windows(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the first and one-past-last input index of every output pixel's BOX window."""
    weights = box_resize_matrix(n_in, n_out) > 0
    first = weights.argmax(axis=1)
    return first, first + weights.sum(axis=1)


def _box_axis(x: Tensor, n_out: int, dim: int, rounded: bool) -> Tensor:
    """Average the BOX windows along ``dim`` (``dim`` < 0), linear in the pixels.

    Windows that tile the axis evenly are summed through a reshape; others as differences of
    cumulative sums. With ``rounded`` the averages are rounded half up as ``⌊(2·sum + n)/(2n)⌋``,
    exact for integer-valued sums (the quotient is never within 1/8 of an integer unless equal).
    """
    first, stop = _box_windows(x.shape[dim], n_out)
    counts = stop - first
    n = int(counts[0])
    if (counts == n).all() and n * n_out == x.shape[dim]:
        sums = x.unflatten(dim, (n_out, n)).sum(dim=dim)  # the new axis of size n sits at dim
    else:
        cumulative = x.cumsum(dim)
        end = torch.as_tensor(stop - 1, device=x.device)
        start = torch.as_tensor(np.maximum(first - 1, 0), device=x.device)
        view = [1] * x.dim()
        view[dim] = n_out
        keep = torch.as_tensor(first > 0, dtype=x.dtype, device=x.device).view(view)
        sums = cumulative.index_select(dim, end) - cumulative.index_select(dim, start) * keep
    count = torch.as_tensor(counts, dtype=x.dtype, device=x.device).view(
        [n_out if i == x.dim() + dim else 1 for i in range(x.dim())]
    )
    return torch.floor((2 * sums + count) / (2 * count)) if rounded else sums / count


def resize_box(x: Tensor, size: tuple[int, int], levels: float | None = None) -> Tensor:
    """Downsample by exact area averaging (PIL ``Image.BOX``): width first, then height.

    With ``levels`` (255 for 8-bit images in [0, 1]) each pass is rounded half up to that many
    levels, as PIL rounds its intermediate 8-bit image between the horizontal and the vertical
    pass (its fixed-point weights give the same rounding for windows of up to 4 pixels).
    """
    if levels is None:
        return _box_axis(_box_axis(x, size[1], -1, False), size[0], -2, False)
    wide = _box_axis(x * levels, size[1], -1, True)
    return _box_axis(wide, size[0], -2, True) / levels


def next_power_of_2(n: int) -> int:
    """Return the smallest power of two that is at least ``n``."""
    return 1 if n <= 1 else 2 ** math.ceil(math.log2(n))
