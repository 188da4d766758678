"""Mixup/CutMix and the losses against timm's Mixup, SoftTargetCrossEntropy and LabelSmoothingCE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from asklepios_panderm.augmentations import MixupCutmix
from asklepios_panderm.losses import (
    CAEv2AlignmentLoss,
    LabelSmoothingCrossEntropy,
    PixelCrossEntropy,
    SoftTargetCrossEntropy,
)
from asklepios_panderm.params import (
    CAEv2AlignmentLossParams,
    LabelSmoothingCrossEntropyParams,
    MixupCutmixParams,
    PixelCrossEntropyParams,
    SoftTargetCrossEntropyParams,
)
from asklepios_sdk import BuildContext
from timm.data.mixup import Mixup
from timm.loss import LabelSmoothingCrossEntropy as TimmLabelSmoothing
from timm.loss import SoftTargetCrossEntropy as TimmSoftTarget

CTX = BuildContext()


@pytest.mark.parametrize("seed", range(6))
def test_mixup_cutmix_equals_timm_mixup_with_soft_target_ce(seed: int) -> None:
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    labels = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(seed + 10))
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed + 20))
    timm_mix = Mixup(
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        prob=1.0,
        switch_prob=0.5,
        mode="batch",
        label_smoothing=0.1,
        num_classes=5,
    )
    np.random.seed(seed)
    timm_images, soft = timm_mix(images.clone(), labels.clone())
    ours = MixupCutmix(MixupCutmixParams(), CTX).train()
    np.random.seed(seed)
    batch = ours({"image": images.clone(), "label": labels.clone()})
    torch.testing.assert_close(batch["image"], timm_images)
    assert torch.equal(batch["label_b"], labels.flip(0))
    loss = SoftTargetCrossEntropy(SoftTargetCrossEntropyParams(), CTX)
    expected = TimmSoftTarget()(logits, soft)
    torch.testing.assert_close(loss({"logits": logits}, batch).total, expected)


def test_mixup_is_off_in_eval_and_with_probability_zero() -> None:
    batch = {"image": torch.randn(4, 3, 8, 8), "label": torch.arange(4)}
    mixer = MixupCutmix(MixupCutmixParams(prob=0.0), CTX).train()
    out = mixer(dict(batch))
    assert torch.equal(out["image"], batch["image"]) and float(out["lam"]) == 1.0
    assert MixupCutmix(MixupCutmixParams(), CTX).eval()(dict(batch)) == batch
    with pytest.raises(ValueError, match="mixup_alpha"):
        MixupCutmixParams(mixup_alpha=0, cutmix_alpha=0)


def test_label_smoothing_ce_equals_timm() -> None:
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    ours = LabelSmoothingCrossEntropy(LabelSmoothingCrossEntropyParams(), CTX)
    torch.testing.assert_close(
        ours({"logits": logits}, {"label": labels}).total, TimmLabelSmoothing(0.1)(logits, labels)
    )
    plain = SoftTargetCrossEntropy(SoftTargetCrossEntropyParams(smoothing=0.0), CTX)
    torch.testing.assert_close(
        plain({"logits": logits}, {"label": labels}).total, F.cross_entropy(logits, labels)
    )


def test_pixel_ce_and_its_errors() -> None:
    logits = torch.randn(2, 2, 4, 4)
    mask = torch.randint(0, 2, (2, 4, 4))
    loss = PixelCrossEntropy(PixelCrossEntropyParams(), CTX)
    torch.testing.assert_close(
        loss({"logits": logits}, {"mask": mask}).total, F.cross_entropy(logits, mask)
    )
    with pytest.raises(Exception, match="mask"):
        loss({"logits": logits}, {"label": torch.zeros(2)})


def test_caev2_alignment_is_one_minus_cosine() -> None:
    pred, target = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    loss = CAEv2AlignmentLoss(CAEv2AlignmentLossParams(weight=2.0), CTX)
    cos = (pred * target).sum(-1) / (pred.norm(dim=-1) * target.norm(dim=-1))
    value = loss({"latent_pred": pred, "latent_target": target}, {}).total
    torch.testing.assert_close(value, 2.0 * (1 - cos).mean())
    with pytest.raises(Exception, match="latent_target"):
        loss({"latent_pred": pred}, {})
