"""Mixing augmentations (§8.2 mixup identities, §8.7 CutMix and ReMix properties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import COUNTS, Y, Z, batch, make_ctx, outputs
from asklepios_longtail.augmentations import CutMix, MixUp, ReMix, cutmix_box, remix_label_weight
from asklepios_longtail.losses.reweighting import FocalLoss, WeightedCELoss
from asklepios_longtail.params import (
    CutMixParams,
    FocalLossParams,
    MixUpParams,
    ReMixParams,
    WeightedCELossParams,
)
from asklepios_sdk import ComponentError


def images(n=6, size=8):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_mixup_mixes_with_its_permutation():
    torch.manual_seed(0)
    x = images()
    out = MixUp(MixUpParams(), make_ctx())({"image": x, "label": torch.tensor(Y)})
    lam = float(out["lam"])
    # find the permutation from the labels is ambiguous; check the convex combination instead
    assert 0 <= lam <= 1
    diffs = [
        (out["image"][i] - lam * x[i]) / (1 - lam) if lam < 1 else torch.zeros_like(x[i])
        for i in range(6)
    ]
    for i, d in enumerate(diffs):
        j = [k for k in range(6) if torch.allclose(d, x[k], atol=1e-4)]
        assert j and int(out["label_b"][i]) == Y[j[0]]
    with pytest.raises(ComponentError, match="already mixed"):
        MixUp(MixUpParams(), make_ctx())(out)


def test_mixup_loss_identities():
    loss = FocalLoss(FocalLossParams(), make_ctx())
    base = float(loss(outputs(), batch()).total.detach())
    mixed = batch(label_b=torch.tensor(Y[::-1].copy()), lam=torch.tensor(1.0))
    assert float(loss(outputs(), mixed).total.detach()) == pytest.approx(base)
    ident = batch(label_b=torch.tensor(Y), lam=torch.tensor(0.37))
    assert float(loss(outputs(), ident).total.detach()) == pytest.approx(base, rel=1e-6)


def test_cutmix_box_and_lambda():
    assert cutmix_box(8, 8, 1.0, 3, 4) == (3, 3, 4, 4)  # zero-area box
    y1, y2, x1, x2 = cutmix_box(10, 10, 0.75, 0, 9)  # side 5, clipped at the corner
    assert (y1, y2, x1, x2) == (0, 2, 7, 10)
    torch.manual_seed(3)
    x = images(size=16)
    out = CutMix(CutMixParams(), make_ctx())({"image": x, "label": torch.tensor(Y)})
    changed = (out["image"] != x).any(dim=1)  # (B, H, W) pasted pixels
    unpasted = 1 - changed.float().mean(dim=(1, 2)).max().item()
    # λ is the unpasted area fraction (random pixels: a pasted box differs everywhere)
    assert 0 < unpasted < 1
    assert float(out["lam"]) == pytest.approx(unpasted, abs=1e-6)
    never = CutMix(CutMixParams(prob=0), make_ctx())({"image": x, "label": torch.tensor(Y)})
    assert float(never["lam"]) == 1 and torch.equal(never["image"], x)
    loss = WeightedCELoss(WeightedCELossParams(), make_ctx())
    base = float(loss(outputs(), batch()).total.detach())
    zero_box = batch(label_b=torch.tensor(Y[::-1].copy()), lam=never["lam"])
    assert float(loss(outputs(), zero_box).total.detach()) == pytest.approx(base)


def test_remix_label_weights():
    n_a = torch.tensor([500.0, 5.0, 100.0, 500.0])
    n_b = torch.tensor([5.0, 500.0, 100.0, 5.0])
    lam = remix_label_weight(0.3, n_a, n_b, kappa=3, tau=0.5)
    assert lam.tolist() == pytest.approx([0.0, 0.3, 0.3, 0.0])
    lam = remix_label_weight(0.7, n_a, n_b, kappa=3, tau=0.5)
    assert lam.tolist() == pytest.approx([0.7, 1.0, 0.7, 0.7])
    never = remix_label_weight(0.3, n_a, n_b, kappa=float("inf"), tau=0.5)
    assert never.tolist() == pytest.approx([0.3] * 4)


def test_remix_with_infinite_kappa_equals_mixup():
    x = images()
    y = torch.tensor(Y)
    torch.manual_seed(5)
    mix = MixUp(MixUpParams(), make_ctx())({"image": x, "label": y})
    torch.manual_seed(5)
    remix = ReMix(ReMixParams(kappa=float("inf")), make_ctx())({"image": x, "label": y})
    assert torch.equal(mix["image"], remix["image"])
    assert torch.equal(mix["label_b"], remix["label_b"])
    assert torch.allclose(remix["lam"], torch.full((6,), float(mix["lam"])))
    loss = WeightedCELoss(WeightedCELossParams(class_weights="cb"), make_ctx(COUNTS))
    out = outputs(Z)
    a = loss(out, {"label": y, "label_b": mix["label_b"], "lam": mix["lam"]}).total
    b = loss(out, {"label": y, "label_b": remix["label_b"], "lam": remix["lam"]}).total
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)
    assert np.isfinite(float(b.detach()))
