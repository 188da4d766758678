"""PanDerm's per-batch mixup / CutMix: timm ``Mixup`` in ``batch`` mode, asklepios targets (§6.4).

Per batch, with probability ``prob``: CutMix with probability ``switch_prob`` (lam ~
Beta(cutmix_alpha), the box area corrects lam) else mixup (lam ~ Beta(mixup_alpha)); the partner
of sample ``i`` is sample ``B - 1 - i`` (the flipped batch). Randomness is numpy's global
generator, as in timm. Instead of timm's soft target the batch carries ``label_b`` (the flipped
labels) and ``lam``; ``panderm.soft_target_ce`` turns them into the same soft target.
"""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import Batch, BatchTransform, BuildContext
from timm.data.mixup import cutmix_bbox_and_lam

from asklepios_panderm.params import MixupCutmixParams

__all__ = ["MixupCutmix"]


class MixupCutmix(BatchTransform):
    """Mix each training batch with its flipped self by mixup or CutMix (timm, batch mode)."""

    def __init__(self, params: MixupCutmixParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def _draw(self) -> tuple[float, bool]:
        """Return ``(lam, use_cutmix)`` exactly as timm's ``Mixup._params_per_batch``."""
        p = self.params
        lam, use_cutmix = 1.0, False
        if np.random.rand() < p.prob:
            if p.mixup_alpha > 0 and p.cutmix_alpha > 0:
                use_cutmix = bool(np.random.rand() < p.switch_prob)
                alpha = p.cutmix_alpha if use_cutmix else p.mixup_alpha
                lam = float(np.random.beta(alpha, alpha))
            elif p.mixup_alpha > 0:
                lam = float(np.random.beta(p.mixup_alpha, p.mixup_alpha))
            else:
                use_cutmix = True
                lam = float(np.random.beta(p.cutmix_alpha, p.cutmix_alpha))
        return lam, use_cutmix

    def forward(self, batch: Batch) -> Batch:
        if not self.training:
            return batch
        out = dict(batch)
        image = batch["image"]
        lam, use_cutmix = self._draw()
        if lam != 1.0:
            image = image.clone()
            if use_cutmix:
                (yl, yh, xl, xh), lam = cutmix_bbox_and_lam(
                    image.shape,
                    lam,
                    ratio_minmax=self.params.cutmix_minmax,
                    correct_lam=self.params.correct_lam,
                )
                image[:, :, yl:yh, xl:xh] = image.flip(0)[:, :, yl:yh, xl:xh]
            else:
                image = image * lam + image.flip(0) * (1.0 - lam)
        out["image"] = image
        out["label_b"] = batch["label"].flip(0)
        out["lam"] = torch.tensor(float(lam), device=image.device)
        return out
