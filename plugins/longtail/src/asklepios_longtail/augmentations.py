"""Per-batch mixing augmentations: MixUp, CutMix, ReMix (mixing convention label/label_b/lam).

Each keeps ``label`` as the first target and adds ``label_b`` (the permuted batch's labels) and
``lam`` (the weight of ``label``), so any longtail loss computes λ·L(label) + (1 − λ)·L(label_b).
Randomness comes from torch's global generator, which the engine seeds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from asklepios_sdk import Batch, BatchTransform, BuildContext, ComponentError
from torch import Tensor

from asklepios_longtail import _functional as fn
from asklepios_longtail.params import CutMixParams, MixUpParams, ReMixParams

__all__ = [
    "CutMix",
    "MixUp",
    "ReMix",
    "cutmix_box",
    "remix_label_weight",
]


def _beta(alpha: float, device: torch.device) -> float:
    if alpha <= 0:
        return 1.0
    a = torch.tensor(float(alpha))
    return float(torch.distributions.Beta(a, a).sample())


def _check(batch: Batch, component: str) -> None:
    if "image" not in batch or "label" not in batch:
        raise ComponentError(f"{component} needs a batch with 'image' and 'label'")
    if "label_b" in batch:
        raise ComponentError(
            f"{component}: the batch is already mixed (it has 'label_b'); list only one mixing "
            "augmentation under data.batch_transforms"
        )


class MixUp(BatchTransform):
    """Mix each batch with a permutation of itself: x̃ = λx + (1 − λ)x_σ, one λ per batch.

    References: Zhang et al., ICLR 2018. MONICA ``losses/MixUp.py`` (also used by GCL and
    CenterLoss).
    """

    def __init__(self, params: MixUpParams, ctx: BuildContext | None = None) -> None:
        super().__init__()
        self.params = params

    def forward(self, batch: Batch) -> Batch:
        _check(batch, type(self).__name__)
        image = batch["image"]
        lam = _beta(self.params.alpha, image.device)
        perm = torch.randperm(image.shape[0], device=image.device)
        out = dict(batch)
        out["image"] = lam * image + (1 - lam) * image[perm]
        out["label_b"] = batch["label"][perm]
        out["lam"] = torch.tensor(lam, device=image.device)
        return out


def cutmix_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """Return the box (y1, y2, x1, x2) of relative side √(1 − λ) centred at (cy, cx), clipped."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    y1, y2 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    x1, x2 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(y1), int(y2), int(x1), int(x2)


class CutMix(BatchTransform):
    """Paste a box of the permuted batch into each image; λ = 1 − box area / image area.

    Beyond MONICA. References: Yun et al., ICCV 2019.
    """

    def __init__(self, params: CutMixParams, ctx: BuildContext | None = None) -> None:
        super().__init__()
        self.params = params

    def forward(self, batch: Batch) -> Batch:
        _check(batch, type(self).__name__)
        image = batch["image"]
        if image.ndim < 3:
            raise ComponentError(f"{type(self).__name__} needs images (B, C, H, W), got 2-D data")
        out = dict(batch)
        applied = float(torch.rand(())) < self.params.prob
        if not applied:
            out["label_b"] = batch["label"]
            out["lam"] = torch.tensor(1.0, device=image.device)
            return out
        lam = _beta(self.params.alpha, image.device)
        height, width = image.shape[-2:]
        cy = int(torch.randint(height, ()))
        cx = int(torch.randint(width, ()))
        perm = torch.randperm(image.shape[0], device=image.device)
        y1, y2, x1, x2 = cutmix_box(height, width, lam, cy, cx)
        mixed = image.clone()
        mixed[..., y1:y2, x1:x2] = image[perm][..., y1:y2, x1:x2]
        out["image"] = mixed
        out["label_b"] = batch["label"][perm]
        out["lam"] = torch.tensor(
            1.0 - (y2 - y1) * (x2 - x1) / (height * width), device=image.device
        )
        return out


def remix_label_weight(lam_x: float, n_a: Tensor, n_b: Tensor, kappa: float, tau: float) -> Tensor:
    """Return ReMix's per-sample label weight λ_y of the first target."""
    ratio = n_a / n_b
    lam = torch.full_like(ratio, lam_x)
    lam = torch.where((ratio >= kappa) & (lam_x < tau), torch.zeros_like(lam), lam)
    return torch.where((ratio <= 1 / kappa) & (1 - lam_x < tau), torch.ones_like(lam), lam)


class ReMix(BatchTransform):
    """MixUp images, but give the label weight to the minority class when counts differ by ≥ κ.

    λ_y = 0 if n_a/n_b ≥ κ and λ_x < τ; 1 if n_a/n_b ≤ 1/κ and 1 − λ_x < τ; else λ_x, per
    sample (``lam`` is a vector). Beyond MONICA. References: Chou et al., ECCV 2020 Workshops.
    """

    counts: Tensor

    def __init__(self, params: ReMixParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__, positive=False)
        self.register_buffer("counts", torch.as_tensor(np.maximum(counts, 1), dtype=torch.float32))

    def forward(self, batch: Batch) -> Batch:
        _check(batch, type(self).__name__)
        image = batch["image"]
        lam_x = _beta(self.params.alpha, image.device)
        perm = torch.randperm(image.shape[0], device=image.device)
        labels = batch["label"]
        out = dict(batch)
        out["image"] = lam_x * image + (1 - lam_x) * image[perm]
        out["label_b"] = labels[perm]
        counts = self.counts.to(image.device)
        out["lam"] = remix_label_weight(
            lam_x, counts[labels], counts[labels[perm]], self.params.kappa, self.params.tau
        )
        return out
