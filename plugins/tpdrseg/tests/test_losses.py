"""The reconstructed BCE + Dice (and focal + Dice) loss against a numpy transcription."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import CTX
from asklepios_sdk import ComponentError
from asklepios_tpdrseg.losses import BceDiceLoss
from asklepios_tpdrseg.params import BceDiceLossParams


def _numpy_loss(z, y, smooth=1.0, focal=None):
    p = 1 / (1 + np.exp(-z))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if focal is not None:
        alpha, gamma = focal
        p_t = p * y + (1 - p) * (1 - y)
        pixel = bce * (1 - p_t) ** gamma * (alpha * y + (1 - alpha) * (1 - y))
    else:
        pixel = bce
    axes = tuple(range(1, z.ndim))
    dice = 1 - (2 * (p * y).sum(axes) + smooth) / (p.sum(axes) + y.sum(axes) + smooth)
    return pixel.mean() + dice.mean(), pixel.mean(), dice.mean()


@pytest.mark.parametrize("kind", ["bce_dice", "focal_dice"])
def test_the_loss_matches_numpy(kind) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 9, 7, generator=gen, dtype=torch.float64)
    mask = (torch.rand(3, 1, 9, 7, generator=gen) > 0.85).to(torch.uint8)
    loss = BceDiceLoss(BceDiceLossParams(loss=kind), CTX)
    out = loss({"logits": logits.requires_grad_(True)}, {"mask": mask})
    focal = (0.25, 2.0) if kind == "focal_dice" else None
    total, pixel, dice = _numpy_loss(logits.detach().numpy(), mask.numpy(), focal=focal)
    assert float(out.total.detach()) == pytest.approx(total, rel=1e-5)
    name = "focal" if focal else "bce"
    assert float(out.terms[name]) == pytest.approx(pixel, rel=1e-5)
    assert float(out.terms["dice"]) == pytest.approx(dice, rel=1e-5)
    out.total.backward()
    assert torch.isfinite(logits.grad).all()


def test_weights_smoothing_and_mask_shapes() -> None:
    logits = torch.zeros(2, 1, 4, 4)
    mask = torch.zeros(2, 4, 4, dtype=torch.uint8)  # (B, H, W) is accepted as well
    params = BceDiceLossParams(pixel_weight=0.0, dice_weight=2.0, smooth=1.0)
    out = BceDiceLoss(params, CTX)({"logits": logits}, {"mask": mask})
    # p = 0.5 everywhere, no lesion: Dice loss = 1 - 1 / (8 + 1)
    assert float(out.total) == pytest.approx(2 * (1 - 1 / 9))
    with pytest.raises(ComponentError, match="differ"):
        BceDiceLoss(params, CTX)({"logits": logits}, {"mask": torch.zeros(2, 1, 3, 3)})
