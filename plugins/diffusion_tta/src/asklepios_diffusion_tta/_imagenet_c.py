"""Private batched torch implementations of the ImageNet-C corruptions.

Every function takes ``x``: a float tensor ``(B, C, H, W)`` in ``[0, 1]`` (``C`` is 1 or 3), a
severity 1..5 and a ``torch.Generator`` on ``x``'s device, and returns a tensor of the same shape in
``[0, 1]``. The parameter tables are those of the PyPI package ``imagecorruptions`` 1.1.2 (the
reference implementation of Hendrycks & Dietterich 2019), which is not imported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asklepios_diffusion_tta._filters import (
    conv_depthwise,
    fft_convolve_valid,
    gaussian_blur,
    next_power_of_2,
    pad2d,
    resize_box,
)

__all__ = ["PARAMS", "disk_kernel", "jpeg_encode", "motion_blur_with_angle", "plasma_fractal"]

PARAMS: dict[str, list] = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "zoom_blur": [
        np.arange(1, 1.11, 0.01),
        np.arange(1, 1.16, 0.01),
        np.arange(1, 1.21, 0.02),
        np.arange(1, 1.26, 0.02),
        np.arange(1, 1.31, 0.03),
    ],
    "snow": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "fog": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "elastic_transform": [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    "jpeg_compression": [25, 18, 15, 10, 7],
    "gaussian_blur": [1, 2, 3, 4, 6],
}


def _uniform(
    shape: Sequence[int], low: float, high: float, gen: torch.Generator, like: Tensor
) -> Tensor:
    u = torch.rand(tuple(shape), generator=gen, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def _normal(shape: Sequence[int], gen: torch.Generator, like: Tensor) -> Tensor:
    return torch.randn(tuple(shape), generator=gen, device=like.device, dtype=like.dtype)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)


def gaussian_noise(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Add N(0, c²) noise per pixel and channel."""
    return (x + c * _normal(x.shape, gen, x)).clamp(0, 1)


@lru_cache(maxsize=16)
def _poisson_tables(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the CDFs of Poisson(k/255·rate) for the 256 8-bit levels k, and their guide table.

    ``cdf[k, n] = P(X ≤ n)`` up to the count where the tail is below 1e-16; ``guide[k, j]`` is the
    smallest ``n`` with ``cdf[k, n] > j/G`` (G = the number of columns), where the search for a
    uniform ``u`` in ``[j/G, (j+1)/G)`` starts (Chen and Asau's indexed search).
    """
    lam = np.arange(256, dtype=np.float64) / 255 * rate
    top = int(rate + 12 * math.sqrt(rate) + 30)
    counts = np.arange(top + 1, dtype=np.float64)
    log_pmf = counts[None] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None]
    log_pmf -= np.cumsum(np.log(np.maximum(counts, 1)))[None]
    pmf = np.where(lam[:, None] > 0, np.exp(log_pmf), (counts[None] == 0).astype(np.float64))
    cdf = np.minimum(np.cumsum(pmf, axis=1), 1.0)
    cdf[:, -1] = 1.0
    grid = np.arange(top + 1, dtype=np.float64) / (top + 1)
    guide = np.stack([np.searchsorted(row.astype(np.float32), grid, side="right") for row in cdf])
    return cdf, guide


def _poisson_levels(levels: Tensor, rate: float, gen: torch.Generator) -> Tensor:
    """Draw Poisson(level/255·rate) for integer ``levels`` in 0..255 by inverse-CDF sampling.

    A uniform ``u`` starts at its guide-table entry and moves up while ``cdf ≤ u``; two steps
    settle almost every value, the few left (the far left tail) continue on their own.
    """
    cdf_np, guide_np = _poisson_tables(float(rate))
    width = cdf_np.shape[1]
    cdf = torch.as_tensor(cdf_np.ravel(), dtype=torch.float32, device=levels.device)
    guide = torch.as_tensor(guide_np.ravel(), dtype=torch.int32, device=levels.device)
    u = torch.rand(levels.shape, generator=gen, device=levels.device).flatten()
    row = levels.flatten().to(torch.int32) * width
    bucket = (u.double() * width).to(torch.int32).clamp_max(width - 1)
    count = guide.take((row + bucket).long())
    for _ in range(2):
        count += cdf.take((row + count).long()) <= u
    pending = (cdf.take((row + count).long()) <= u).nonzero().flatten()
    while pending.numel():
        count[pending] += 1
        still = cdf.take((row[pending] + count[pending]).long()) <= u[pending]
        pending = pending[still]
    return count.view(levels.shape)


def shot_noise(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Replace each value by Poisson(x·c)/c (photon counting at rate c).

    Images on the 8-bit grid (``x·255`` integral, as every decoded image is) draw by inverse-CDF
    sampling from per-level tables, exact and several times faster than ``torch.poisson``.
    """
    levels = torch.round(x * 255)
    if bool(torch.equal(levels / 255, x)):
        counts = _poisson_levels(levels, c, gen)
        return (counts.to(x.dtype) / c).clamp(0, 1)
    return (torch.poisson(x * c, generator=gen) / c).clamp(0, 1)


def impulse_noise(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Set a fraction c of values to 0 or 1 with equal odds (skimage ``s&p``).

    One uniform ``u`` per value decides both: ``u < c/2`` salt (1), ``c/2 ≤ u < c`` pepper (0),
    the same joint law as skimage's two independent draws.
    """
    u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    out = x.masked_fill(u < c / 2, 1.0)
    return out.masked_fill((u >= c / 2) & (u < c), 0.0)


def speckle_noise(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Multiply by (1 + N(0, c²)) per pixel and channel."""
    return (x + x * c * _normal(x.shape, gen, x)).clamp(0, 1)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Return the antialiased disk of ``defocus_blur`` (OpenCV ``GaussianBlur`` of a disk)."""
    span, ksize = (8, 3) if radius <= 8 else (radius, 5)
    offsets = np.arange(-span, span + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    # OpenCV's Gaussian kernel for an explicit sigma, applied with BORDER_REFLECT_101.
    centred = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(centred**2) / (2 * alias_blur**2))
    g /= g.sum()
    pad = ksize // 2
    n = disk.shape[0]
    index = np.abs(np.arange(-pad, n + pad))
    index = np.where(index >= n, 2 * (n - 1) - index, index)
    padded = disk[np.ix_(index, index)]
    rows = sum(g[i] * padded[i : i + n, :] for i in range(ksize))
    return sum(g[j] * rows[:, j : j + n] for j in range(ksize))


def defocus_blur(x: Tensor, c: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Convolve with an antialiased disk of radius c[0]."""
    return conv_depthwise(x, disk_kernel(c[0], c[1])).clamp(0, 1)


def glass_scramble(y: Tensor, dy: Tensor, dx: Tensor, delta: int) -> Tensor:
    """Run one round of the reference's sequential pixel "swap" scan, in parallel.

    The reference visits rows ``H−δ … δ+1`` and, in each, columns ``W−δ … δ+1`` (bottom-right to
    top-left) and runs ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on an RGB array: both sides
    are views, so the pixel at ``(h, w)`` takes the *current* value at ``(h + dy, w + dx)`` and
    the source keeps its own. A source that the scan has already visited (later in row-major
    order) holds a value it copied itself, so one pixel can travel along a chain of offsets in one
    round. Following each pixel's chain by pointer doubling gives the scan's result exactly, in
    ``O(log chain)`` gathers.

    Args:
        y: ``(B, C, H, W)`` images.
        dy, dx: ``(B, H, W)`` integer offsets drawn from ``[−δ, δ)`` (used at visited pixels).
        delta: δ, the maximal offset.
    """
    b, c, h, w = y.shape
    rows = torch.arange(h, device=y.device).view(h, 1)
    cols = torch.arange(w, device=y.device).view(1, w)
    visited = (
        (rows > delta) & (rows <= h - delta) & (cols > delta) & (cols <= w - delta)
    ).flatten()
    position = torch.arange(h * w, device=y.device).expand(b, h * w)
    source = torch.where(visited, position + (dy * w + dx).flatten(1), position)
    chained = visited & visited[source] & (source > position)
    while bool(chained.any()):
        source, chained = (
            torch.where(chained, source.gather(1, source), source),
            chained & chained.gather(1, source),
        )
    flat = y.flatten(2).gather(2, source[:, None, :].expand(b, c, h * w))
    return flat.view(b, c, h, w)


def glass_blur(x: Tensor, c: tuple[float, int, int], gen: torch.Generator) -> Tensor:
    """Blur, quantise (truncating), scramble pixels locally for c[2] rounds, blur again.

    Each round reproduces the reference's sequential scan (:func:`glass_scramble`); its offsets
    are drawn uniformly from ``[−c[1], c[1])`` as ``np.random.randint`` draws them.
    """
    sigma, delta, rounds = c
    b, _, h, w = x.shape
    y = torch.floor(gaussian_blur(x, sigma) * 255).div(255)
    for _ in range(rounds):
        dy = torch.randint(-delta, delta, (b, h, w), generator=gen, device=x.device)
        dx = torch.randint(-delta, delta, (b, h, w), generator=gen, device=x.device)
        y = glass_scramble(y, dy, dx, delta)
    return gaussian_blur(y, sigma).clamp(0, 1)


def motion_blur_with_angle(x: Tensor, radius: int, sigma: float, angle: Tensor) -> Tensor:
    """Blur along a line at ``angle`` degrees (per image), Gaussian weights over 2·radius+1 taps.

    Tap i shifts the image by (−⌈i·sin a − ½⌉, −⌈i·cos a − ½⌉) pixels with the edge repeated, as
    the reference's ``shift`` does; the taps are gathered into one sparse kernel per image and
    applied by FFT on the edge-padded image (equal to summing the shifted copies). Taps stop once
    a shift leaves the image, as in the reference.
    """
    width = 2 * radius + 1
    taps = torch.arange(width, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    rad = torch.deg2rad(angle.to(torch.float64)).view(-1, 1)
    dy = -torch.ceil(taps * torch.sin(rad) - 0.5).long()
    dx = -torch.ceil(taps * torch.cos(rad) - 0.5).long()
    h, w = x.shape[-2:]
    inside = (dy.abs() < h) & (dx.abs() < w)
    alive = torch.cumprod(inside.long(), dim=1).bool()
    size = 2 * width + 1
    flat = ((dy + width) * size + (dx + width)).clamp(0, size * size - 1)
    kernel = torch.zeros(angle.shape[0], size * size, dtype=torch.float64)
    kernel.scatter_add_(1, flat, weights.expand_as(flat) * alive)
    kernel = kernel.view(-1, size, size).to(x.device)
    padded = pad2d(x, width, width, "nearest")
    return fft_convolve_valid(padded, kernel)


def motion_blur(x: Tensor, c: tuple[int, float], gen: torch.Generator) -> Tensor:
    """Blur along a random direction in [-45°, 45°)."""
    angle = _uniform((x.shape[0],), -45, 45, gen, x).cpu()
    return motion_blur_with_angle(x, c[0], c[1], angle).clamp(0, 1)


def clipped_zoom(x: Tensor, factor: float) -> Tensor:
    """Zoom into the centre by ``factor`` (scipy ``zoom(order=1)``) and keep the top-left H×W."""
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    size = (round(ch * factor), round(cw * factor))
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=True)[..., :h, :w]


def zoom_blur(x: Tensor, c: np.ndarray, gen: torch.Generator) -> Tensor:
    """Average the image with centre zooms at every factor in c."""
    out = x.clone()
    for factor in c:
        out = out + clipped_zoom(x, float(factor))
    return (out / (len(c) + 1)).clamp(0, 1)


def snow(x: Tensor, c: tuple, gen: torch.Generator) -> Tensor:
    """Overlay a motion-blurred, thresholded noise layer and brighten towards grey."""
    loc, scale, zoom, threshold, radius, sigma, keep = c
    b, _, h, w = x.shape
    layer = loc + scale * _normal((b, 1, h, w), gen, x)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    angle = _uniform((b,), -135, -45, gen, x).cpu()
    layer = motion_blur_with_angle(layer, radius, sigma, angle)
    layer = torch.round(layer * 255) / 255
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return (x + layer + torch.flip(layer, dims=(-2, -1))).clamp(0, 1)


@lru_cache(maxsize=32)
def _scaled_texture(texture: Tensor, h: int, w: int) -> Tensor:
    """Scale a texture (bicubic, like the reference) to cover ``h``×``w`` with a 10 % margin."""
    th, tw = texture.shape[-2:]
    factor = max(1.0, h / th, w / tw) * 1.1
    size = (math.ceil(th * factor), math.ceil(tw * factor))
    scaled = F.interpolate(texture[None], size=size, mode="bicubic", align_corners=False)[0]
    return scaled.clamp(0, 1)


def frost(
    x: Tensor, c: tuple[float, float], gen: torch.Generator, textures: Sequence[Tensor]
) -> Tensor:
    """Blend with a random crop of a frost texture: c[0]·x + c[1]·frost.

    ``textures`` are float ``(3, h, w)`` RGB images in [0, 1]; each is scaled (bicubic) to cover the
    image with a 10 % margin, as the reference does, before a random crop.
    """
    b, channels, h, w = x.shape
    choice = torch.randint(len(textures), (b,), generator=gen, device=x.device).cpu()
    layer = torch.empty((b, 3, h, w), dtype=x.dtype, device=x.device)
    for index in choice.unique().tolist():
        tex = _scaled_texture(textures[index], h, w).to(device=x.device, dtype=x.dtype)
        size = tex.shape[-2:]
        members = (choice == index).nonzero().flatten().to(x.device)
        n = len(members)
        top = torch.randint(size[0] - h, (n,), generator=gen, device=x.device)
        left = torch.randint(size[1] - w, (n,), generator=gen, device=x.device)
        rows = top[:, None] + torch.arange(h, device=x.device)[None]
        cols = left[:, None] + torch.arange(w, device=x.device)[None]
        crops = tex.permute(1, 2, 0)[rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        layer[members] = crops.clamp(0, 1)
    if channels == 1:
        layer = _gray(layer)
    return (c[0] * x + c[1] * layer).clamp(0, 1)


def plasma_fractal(
    batch: int, mapsize: int, wibbledecay: float, gen: torch.Generator, like: Tensor
) -> Tensor:
    """Draw ``batch`` diamond-square height maps ``(batch, mapsize, mapsize)`` in [0, 1]."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"plasma_fractal needs a power-of-two map size, got {mapsize}")
    grid = torch.zeros((batch, mapsize, mapsize), dtype=like.dtype, device=like.device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(values: Tensor) -> Tensor:
        return values / 4 + wibble * _uniform(values.shape, -wibble, wibble, gen, like)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0::step, 0::step]
        square = corners + torch.roll(corners, -1, dims=1)
        square = square + torch.roll(square, -1, dims=2)
        grid[:, half::step, half::step] = wibbled_mean(square)
        down_right = grid[:, half::step, half::step]
        up_left = grid[:, 0::step, 0::step]
        left_sum = down_right + torch.roll(down_right, 1, dims=1)
        left_sum = left_sum + up_left + torch.roll(up_left, -1, dims=2)
        grid[:, 0::step, half::step] = wibbled_mean(left_sum)
        top_sum = down_right + torch.roll(down_right, 1, dims=2)
        top_sum = top_sum + up_left + torch.roll(up_left, -1, dims=1)
        grid[:, half::step, 0::step] = wibbled_mean(top_sum)
        step //= 2
        wibble /= wibbledecay
    grid = grid - grid.amin(dim=(1, 2), keepdim=True)
    return grid / grid.amax(dim=(1, 2), keepdim=True)


def fog(x: Tensor, c: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Add c[0]·plasma fractal (wibble decay c[1]) and rescale by max/(max + c[0])."""
    b, _, h, w = x.shape
    size = next_power_of_2(max(h, w))
    plasma = plasma_fractal(b, size, c[1], gen, x)[:, None, :h, :w]
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + c[0] * plasma) * max_val / (max_val + c[0])).clamp(0, 1)


def brightness(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Add c to the HSV value channel (hue and saturation unchanged)."""
    if x.shape[1] == 1:
        return (x + c).clamp(0, 1)
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + c).clamp(0, 1)
    # With hue and saturation fixed, RGB scales with V; black pixels (V = 0) have S = 0.
    scaled = x * new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, scaled, new_value.expand_as(x)).clamp(0, 1)


def contrast(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Scale the deviation from each channel's mean by c."""
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def elastic_transform(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Warp by a smooth random displacement field: uniform ±0.5 % of H, Gaussian σ = 1 %, ×α."""
    b, _, h, w = x.shape
    max_d = h * 0.005
    sigma = (h * 0.01, w * 0.01)
    field = _uniform((b, 2, h, w), -max_d, max_d, gen, x)
    field = gaussian_blur(field, sigma, truncate=3.0, mode="reflect") * c
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + field[:, 1]
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + field[:, 0]
    grid = torch.stack([cols / max(w - 1, 1) * 2 - 1, rows / max(h - 1, 1) * 2 - 1], dim=-1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return out.clamp(0, 1)


def pixelate(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Downsample by c with a box filter (quantised to 8 bits) and upsample nearest."""
    h, w = x.shape[-2:]
    small = resize_box(x, (int(h * c), int(w * c)), levels=255)
    return F.interpolate(small, size=(h, w), mode="nearest-exact")


def jpeg_encode(x: Tensor, quality: int) -> Tensor:
    """Round-trip every image through an in-memory JPEG at ``quality`` (Pillow, on the CPU)."""
    import io

    from PIL import Image

    as_uint8 = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).cpu()
    b, c, h, w = as_uint8.shape
    mode = "L" if c == 1 else "RGB"
    pixels = as_uint8.permute(0, 2, 3, 1).contiguous().numpy()
    out = torch.empty((b, h, w, c), dtype=torch.uint8)
    for i in range(b):
        buffer = io.BytesIO()
        Image.frombuffer(mode, (w, h), pixels[i].tobytes(), "raw", mode, 0, 1).save(
            buffer, "JPEG", quality=int(quality)
        )
        with Image.open(buffer) as image:
            out[i] = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(h, w, c)
    return out.permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255


def _pil_map(x: Tensor, apply: Callable[[Any], Any]) -> Tensor:
    """Run ``apply`` on every ``uint8`` image ``(B, C, H, W)`` as a Pillow image; same shape."""
    from PIL import Image

    b, c, h, w = x.shape
    mode = "L" if c == 1 else "RGB"
    pixels = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty_like(pixels)
    for i in range(b):
        image = Image.fromarray(pixels[i, ..., 0] if c == 1 else pixels[i], mode)
        out[i] = np.asarray(apply(image)).reshape(h, w, c)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def jpeg_uint8(x: Tensor, quality: int) -> Tensor:
    """Round-trip ``uint8`` images ``(B, C, H, W)`` through JPEG at ``quality`` (Pillow)."""
    import io

    from PIL import Image

    def round_trip(image: Any) -> Any:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))
        decoded = Image.open(buffer)
        decoded.load()
        return decoded

    return _pil_map(x, round_trip)


def pixelate_uint8(x: Tensor, c: float) -> Tensor:
    """:func:`pixelate` on ``uint8`` images: the same levels, without the float round trip."""
    h, w = x.shape[-2:]
    small = resize_box(x.float(), (int(h * c), int(w * c)), levels=1.0).to(torch.uint8)
    rows = ((torch.arange(h) * 2 + 1) * small.shape[-2]) // (2 * h)
    cols = ((torch.arange(w) * 2 + 1) * small.shape[-1]) // (2 * w)
    return small.index_select(-2, rows.to(x.device)).index_select(-1, cols.to(x.device))


def jpeg_compression(x: Tensor, c: int, gen: torch.Generator) -> Tensor:
    """Re-encode as JPEG at quality c."""
    return jpeg_encode(x, c)


def gaussian_blur_corruption(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    """Blur with a Gaussian of standard deviation c (nearest border)."""
    return gaussian_blur(x, c).clamp(0, 1)


OPS: dict[str, Callable[..., Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "gaussian_blur": gaussian_blur_corruption,
}

UINT8_OPS: dict[str, Callable[[Tensor, Any], Tensor]] = {
    "jpeg_compression": jpeg_uint8,
    "pixelate": pixelate_uint8,
}
"""Corruptions with an exact ``uint8`` path (CPU), used when the input batch is ``uint8``."""
