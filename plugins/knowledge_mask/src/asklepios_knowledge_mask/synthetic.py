"""A SYNTHETIC angiography-like video built from scikit-image's real ``retina`` photograph.

This is not fluorescein angiography: it is a deterministic toy for demos and tests. The colour
fundus photograph is real (``skimage.data.retina``, CC0); the "FFA" frames are made from it:
the vessel map (a black top-hat of the green channel) fills with dye over time, the background
flushes slowly, and one synthetic leakage blob brightens late, so that the knowledge mask has a
region to find.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["retina_photo", "synthetic_fundus_video"]


def retina_photo(size: int) -> torch.Tensor:
    """Return scikit-image's ``retina`` photograph resized to ``size``² as uint8 ``(3, S, S)``."""
    return _retina_photo(size).clone()


@lru_cache(maxsize=4)
def _retina_photo(size: int) -> torch.Tensor:
    from skimage import data

    photo = torch.from_numpy(np.ascontiguousarray(data.retina())).permute(2, 0, 1)
    resized = F.interpolate(
        photo[None].to(torch.float32), size=(size, size), mode="bilinear", antialias=True
    )[0]
    return resized.round().clamp(0, 255).to(torch.uint8)


def synthetic_fundus_video(
    size: int = 128, num_frames: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make a (real CF, SYNTHETIC FFA video) pair from the ``retina`` photograph.

    Args:
        size: side of the square images.
        num_frames: number of FFA frames ``M`` (time order).
        seed: seed of the leakage position and the frame noise.

    Returns:
        ``(cf, video)``: uint8 ``(3, S, S)`` and uint8 ``(M, 3, S, S)`` (grey frames in 3 channels).
    """
    rng = np.random.default_rng(seed)
    cf = retina_photo(size)
    green = cf[1].numpy().astype(np.float32)
    fov = ndimage.binary_erosion(green > 20, iterations=max(1, size // 64))
    radius = max(2, size // 40)
    vessels = ndimage.grey_closing(green, size=(2 * radius + 1, 2 * radius + 1)) - green
    vessels = np.clip(vessels / max(float(vessels[fov].max(initial=1.0)), 1.0), 0.0, 1.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    inside = np.argwhere(fov)
    cy, cx = inside[rng.integers(len(inside))] if len(inside) else (size / 2, size / 2)
    leak = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * (size / 12.0) ** 2))
    times = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)[:, None, None]
    fill = 1.0 - np.exp(-6.0 * times)
    frames = 12.0 + 25.0 * times + 170.0 * vessels * fill + 140.0 * leak * times**2
    frames = frames + rng.normal(0.0, 2.0, size=frames.shape)
    frames = np.where(fov, np.clip(frames, 4, 255), 0.0).round().astype(np.uint8)
    video = torch.from_numpy(frames)[:, None].expand(-1, 3, -1, -1).contiguous()
    return cf, video
