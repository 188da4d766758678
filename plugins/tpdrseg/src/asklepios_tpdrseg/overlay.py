"""PNG overlays of predicted against ground-truth lesion masks for a few evaluation images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk.io import write_atomic

from asklepios_tpdrseg.encoder import SAM_PIXEL_MEAN, SAM_PIXEL_STD

__all__ = ["overlay_rgb", "write_overlay"]

MAX_SIDE = 256


def _shrink(tensor: torch.Tensor, mode: str) -> torch.Tensor:
    side = max(tensor.shape[-2:])
    if side <= MAX_SIDE:
        return tensor
    size = [max(1, round(s * MAX_SIDE / side)) for s in tensor.shape[-2:]]
    if mode == "max":  # keep every small lesion visible when shrinking a mask
        return F.adaptive_max_pool2d(tensor[None].float(), size)[0]
    return F.interpolate(tensor[None].float(), size=size, mode="area")[0]


def overlay_rgb(
    image: torch.Tensor, prob: torch.Tensor, target: torch.Tensor, threshold: float
) -> np.ndarray:
    """Return an ``H x W x 3`` float image: the fundus with TP yellow, FN green, FP red."""
    mean = torch.tensor(SAM_PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(3, 1, 1)
    rgb = _shrink((image * std + mean).clamp(0, 1), "area").permute(1, 2, 0).numpy()
    pred = _shrink((prob >= threshold)[None], "max")[0].numpy() > 0
    true = _shrink(target[None], "max")[0].numpy() > 0
    out = 0.6 * rgb
    colours = {
        (True, True): (1.0, 1.0, 0.0),
        (False, True): (0.0, 1.0, 0.0),
        (True, False): (1.0, 0.0, 0.0),
    }
    for (p, t), colour in colours.items():
        where = (pred == p) & (true == t)
        out[where] = colour
    return out


def write_overlay(path: str | Path, drawn: Sequence[dict[str, Any]], threshold: float) -> Path:
    """Write one row per image (fundus, ground truth, prediction, overlay) to ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.6 * len(drawn)), dpi=100)
    axes = fig.subplots(len(drawn), 4, squeeze=False)
    mean = torch.tensor(SAM_PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(3, 1, 1)
    for row, item in zip(axes, drawn, strict=True):
        image = _shrink((item["image"] * std + mean).clamp(0, 1), "area").permute(1, 2, 0)
        panels = [
            (image.numpy(), f"{item['lesion']}: image"),
            (_shrink(item["target"][None], "max")[0].numpy(), "ground truth"),
            (_shrink(item["prob"][None], "area")[0].numpy(), "probability"),
            (overlay_rgb(item["image"], item["prob"], item["target"], threshold), "TP / FN / FP"),
        ]
        for axis, (picture, title) in zip(row, panels, strict=True):
            axis.imshow(picture, cmap="gray", vmin=0, vmax=1)
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    fig.tight_layout()
    return write_atomic(path, write=lambda tmp: fig.savefig(tmp, format="png"))
