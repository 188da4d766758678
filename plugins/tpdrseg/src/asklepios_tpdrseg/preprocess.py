"""SAM preprocessing of fundus photographs and lesion masks, and scikit-image pseudo-masks.

SAM's preprocessing (``segment_anything``'s ``ResizeLongestSide`` and ``Sam.preprocess``): resize
the longest side to ``size``, normalise with mean (123.675, 116.28, 103.53) and std (58.395,
57.12, 57.375) on the 0-255 scale, pad bottom and right with zeros to ``size x size``. Masks
follow the same geometry: area-resized, thresholded, padded with background.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from asklepios_tpdrseg.encoder import SAM_PIXEL_MEAN, SAM_PIXEL_STD

__all__ = ["longest_side_shape", "pseudo_lesion_mask", "sam_preprocess", "sam_preprocess_mask"]


def longest_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Return ``(h, w)`` scaled so that the longest side is ``size`` (SAM's rounding)."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _pad(tensor: Tensor, size: int) -> Tensor:
    height, width = tensor.shape[-2:]
    return F.pad(tensor, (0, size - width, 0, size - height))


def sam_preprocess(image: np.ndarray | Tensor, size: int = 1024) -> Tensor:
    """Return the SAM input ``(3, size, size)`` of an ``H x W x 3`` uint8 (or float) image.

    Grey images (``H x W``) are repeated to three channels.
    """
    array = torch.tensor(np.asarray(image))
    if array.dim() == 2:
        array = array.unsqueeze(-1).expand(-1, -1, 3)
    pixels = array.permute(2, 0, 1)[:3].float()
    if array.dtype == torch.uint8:
        pixels = pixels / 255.0
    shape = longest_side_shape(pixels.shape[1], pixels.shape[2], size)
    resized = F.interpolate(
        pixels.unsqueeze(0), size=shape, mode="bicubic", align_corners=False, antialias=True
    )[0]
    mean = torch.tensor(SAM_PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(3, 1, 1)
    return _pad((resized.clamp(0, 1) - mean) / std, size)


def sam_preprocess_mask(
    mask: np.ndarray | Tensor, size: int = 1024, threshold: float = 0.5
) -> Tensor:
    """Return the ``(1, size, size)`` uint8 mask aligned with :func:`sam_preprocess`.

    The binary mask (any non-zero pixel is lesion) is area-resized and thresholded at
    ``threshold`` (the lesion fraction of an output pixel), then padded with background.
    """
    binary = torch.as_tensor(np.asarray(mask) > 0).float()
    if binary.dim() == 3:
        binary = binary.amax(dim=-1)
    shape = longest_side_shape(binary.shape[0], binary.shape[1], size)
    area = F.interpolate(binary[None, None], size=shape, mode="area")[0]
    return _pad((area >= threshold).to(torch.uint8), size)


def pseudo_lesion_mask(grey: np.ndarray, kind: str = "dark", radius: int = 5) -> np.ndarray:
    """Return a pseudo lesion mask: top-hat (disk ``radius``) above its Otsu threshold.

    ``dark`` (black top-hat) picks small dark structures such as microaneurysms and thin
    vessels; ``bright`` (white top-hat) small bright ones such as exudates. For demos and tests
    only: this is not an annotation.
    """
    from skimage.filters import threshold_otsu
    from skimage.morphology import black_tophat, disk, white_tophat

    tophat = black_tophat if kind == "dark" else white_tophat
    response = tophat(np.asarray(grey), disk(radius))
    if response.max() == response.min():
        return np.zeros(response.shape, dtype=bool)
    return response > threshold_otsu(response)
