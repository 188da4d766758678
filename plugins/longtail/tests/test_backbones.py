"""SADE's multi-expert ResNet: shapes, shared trunk, per-expert heads, with the SADE/RIDE losses."""

from __future__ import annotations

import pytest
import torch
from _fixtures import make_ctx
from asklepios_longtail.backbones import ExpertResNet
from asklepios_longtail.losses.experts import RIDELoss, SADELoss
from asklepios_longtail.params import ExpertResNetParams, RIDELossParams, SADELossParams

TINY = {"layers": (1, 1, 1, 1), "planes": (4, 4, 8, 8)}


def test_default_layout_is_sade_resnet50():
    model = ExpertResNet(ExpertResNetParams(), make_ctx([5, 3, 2, 1]))
    assert model.feature_dim == 1536 and len(model.experts) == 3
    blocks = [len(layer) for layer in model.shared] + [len(layer) for layer in model.experts[0][:2]]
    assert blocks == [3, 4, 6, 3]


def test_expert_resnet_initialisation_is_monicas():
    """Convolutions N(0, √(2/(k²·out))), BatchNorm 1/0 (MONICA ``models/Expert_ResNet.py``)."""
    import math

    torch.manual_seed(0)
    model = ExpertResNet(ExpertResNetParams(planes=(16, 16, 32, 32)), make_ctx([5, 3, 2, 1]))
    standardised = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            k_h, k_w = module.kernel_size
            sigma = math.sqrt(2.0 / (k_h * k_w * module.out_channels))
            standardised.append(module.weight.detach().flatten() / sigma)
        elif isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    pooled = torch.cat(standardised)
    assert pooled.numel() > 100_000
    assert float(pooled.std()) == pytest.approx(1.0, abs=0.01)  # PyTorch's default: ~0.4-0.6
    assert abs(float(pooled.mean())) < 0.01
    # the cosine heads keep NormedLinear's own init (columns of norm 1)
    head = model.heads[0].weight.detach()
    assert torch.allclose(head.norm(dim=0), torch.ones(head.shape[1]), atol=1e-4)


def test_outputs_and_training_with_sade_and_ride():
    torch.manual_seed(0)
    ctx = make_ctx([5, 3, 2, 1])
    model = ExpertResNet(ExpertResNetParams(**TINY), ctx)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    out = model(batch)
    assert out["expert_logits"].shape == (3, 4, 4) and out["features"].shape == (4, 32)
    assert torch.allclose(out["logits"], out["expert_logits"].mean(dim=0))
    assert out["expert_logits"].abs().max() <= 30 + 1e-4  # scaled cosines
    for loss in (SADELoss(SADELossParams(), ctx), RIDELoss(RIDELossParams(), ctx)):
        model.zero_grad()
        loss(model(batch), batch).total.backward()
        assert all(p.grad is not None for p in model.heads.parameters())
        assert model.stem[0].weight.grad.abs().sum() > 0
    model.reset_classifier(6)
    assert model(batch)["logits"].shape == (4, 6)


def _np_center(maps, labels, centers, weight, bias):
    import numpy as np

    out = 0.0
    for i, y in enumerate(labels):
        pooled = maps[i].mean(axis=(1, 2))
        scores = pooled @ weight[y] + bias[y]
        gamma = np.exp(scores - scores.max())
        gamma = gamma / gamma.sum()
        dist = ((maps[i][None] - centers[y][:, :, None, None]) ** 2).sum(axis=(1, 2, 3))
        out += (gamma * dist).sum()
    return out / len(labels)


def test_rsg_center_term_against_numpy_and_aux_losses():
    import numpy as np
    from asklepios_longtail.params import RSGResNeXtParams
    from asklepios_longtail.rsg import RSGModule, RSGResNeXt

    torch.manual_seed(0)
    module = RSGModule(channels=3, num_classes=2, n_center=4, contrastive_dim=5)
    with torch.no_grad():
        module.assign_weight.normal_()
        module.assign_bias.normal_()
    maps = torch.randn(4, 3, 2, 2)
    labels = torch.tensor([0, 1, 1, 0])
    expected = _np_center(
        maps.numpy(),
        labels.numpy(),
        module.centers.detach().numpy(),
        module.assign_weight.detach().numpy(),
        module.assign_bias.detach().numpy(),
    )
    assert float(module.center_term(maps, labels).detach()) == pytest.approx(expected, rel=1e-5)
    contrast = module.contrast_term(maps, labels)
    logits = module.contrast(torch.cat([maps[:2], maps[2:]], dim=1))
    same = torch.tensor([0, 0])  # pairs (0, 2) and (1, 3) differ in class
    assert torch.allclose(contrast, torch.nn.functional.cross_entropy(logits, same))
    assert np.isfinite(expected)

    model = RSGResNeXt(
        RSGResNeXtParams(model_name="resnet10t", n_center=2, contrastive_dim=8),
        make_ctx([5, 3, 2, 1]),
    )
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    out = model(batch)
    assert set(out["aux_losses"]) == {"rsg_cesc", "rsg_mv"}
    assert out["logits"].abs().max() <= 1 + 1e-5
    out["aux_losses"]["rsg_cesc"].backward()
    assert all(p.grad is None for p in model.trunk.parameters())  # CESC sees detached maps
    assert model.rsg.centers.grad is not None
    assert "aux_losses" not in model.eval()(batch)
