"""SADE's multi-expert ResNet: shapes, shared trunk, per-expert heads, with the SADE/RIDE losses."""

from __future__ import annotations

import torch
from _fixtures import make_ctx
from asklepios_longtail.backbones import ExpertResNet, ExpertResNetParams
from asklepios_longtail.losses import RIDELoss, RIDEParams, SADELoss, SADEParams

TINY = {"layers": (1, 1, 1, 1), "planes": (4, 4, 8, 8)}


def test_default_layout_is_sade_resnet50():
    model = ExpertResNet(ExpertResNetParams(), make_ctx([5, 3, 2, 1]))
    assert model.feature_dim == 1536 and len(model.experts) == 3
    blocks = [len(layer) for layer in model.shared] + [len(layer) for layer in model.experts[0][:2]]
    assert blocks == [3, 4, 6, 3]


def test_outputs_and_training_with_sade_and_ride():
    torch.manual_seed(0)
    ctx = make_ctx([5, 3, 2, 1])
    model = ExpertResNet(ExpertResNetParams(**TINY), ctx)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    out = model(batch)
    assert out["expert_logits"].shape == (3, 4, 4) and out["features"].shape == (4, 32)
    assert torch.allclose(out["logits"], out["expert_logits"].mean(dim=0))
    assert out["expert_logits"].abs().max() <= 30 + 1e-4  # scaled cosines
    for loss in (SADELoss(SADEParams(), ctx), RIDELoss(RIDEParams(), ctx)):
        model.zero_grad()
        loss(model(batch), batch).total.backward()
        assert all(p.grad is not None for p in model.heads.parameters())
        assert model.stem[0].weight.grad.abs().sum() > 0
    model.reset_classifier(6)
    assert model(batch)["logits"].shape == (4, 6)
