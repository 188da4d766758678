"""RSG's feature transfer (MV) against a numpy transcription of MONICA ``models/RSG.py`` (§3.10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import make_ctx
from asklepios_longtail.losses.reweighting import LDAMLoss
from asklepios_longtail.params import LDAMLossParams, RSGResNeXtParams
from asklepios_longtail.rsg import RSGModule, RSGResNeXt, transfer_pairs
from asklepios_sdk import ComponentError


def _conv(x, w, b, pad):
    """Cross-correlate (N, C, H, W) with (O, C, k, k) weights, zero padding ``pad``."""
    n, _, h, width = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, w.shape[0], h + 2 * pad - k + 1, width + 2 * pad - k + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = xp[:, :, i : i + k, j : j + k]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w) + b
    return out


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _np_mv(p, head, yh, tail, yt):
    """MONICA's compute_mv_loss for one round, written from its description in numpy."""

    def nearest_center(maps, y):
        gamma = _softmax(np.einsum("nc,nck->nk", maps.mean(axis=(2, 3)), p["A"][y]) + p["b"][y])
        return p["mu"][y, gamma.argmax(axis=1)][:, :, None, None]

    c = head.shape[1]
    var = head - nearest_center(head, yh)
    moved = _conv(var, p["tw"], p["tb"], 1)
    hidden = np.maximum(_conv(np.concatenate([head, moved], 1), p["c1w"], p["c1b"], 0), 0)
    pooled = _conv(hidden, p["c2w"], p["c2b"], 1).mean(axis=(2, 3))
    logits = pooled @ p["fw"].T + p["fb"]
    ce = np.mean(-np.log(_softmax(logits)[:, 0]))
    rows_moved, rows_var = moved.reshape(-1, c), var.reshape(-1, c)
    norms = np.abs(np.linalg.norm(rows_moved, axis=1) - np.linalg.norm(rows_var, axis=1)).sum()
    vec = (tail - nearest_center(tail, yt)).reshape(-1, c)
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    unit_moved = rows_moved / np.linalg.norm(rows_moved, axis=1, keepdims=True)
    direction = np.abs(unit * unit_moved - 1).sum()
    return ce + (norms + direction) / len(tail), tail + moved


def _np_rounds(n_head, n_tail, strength):
    """MONICA's segments: which head and tail positions each round pairs."""
    if n_head >= n_tail:
        seg = max(1, int(n_head * strength / n_tail))
        return [
            (list(range(j * n_tail, (j + 1) * n_tail)), list(range(n_tail))) for j in range(seg)
        ]
    seg = max(1, int(n_tail * strength / n_head))
    return [(list(range(n_head)), list(range(j * n_head, (j + 1) * n_head))) for j in range(seg)]


@pytest.mark.parametrize(
    ("n_head", "n_tail", "strength"), [(4, 2, 1.0), (2, 5, 1.0), (7, 3, 0.5), (1, 1, 1.0)]
)
def test_transfer_rounds_follow_monica(n_head, n_tail, strength):
    head, tail = torch.arange(n_head) + 100, torch.arange(n_tail) + 200
    got = [(h.tolist(), t.tolist()) for h, t in transfer_pairs(head, tail, strength)]
    want = [
        ([100 + i for i in h], [200 + i for i in t])
        for h, t in _np_rounds(n_head, n_tail, strength)
    ]
    assert got == want
    assert transfer_pairs(head[:0], tail, strength) == []


def _params(module):
    c1, c2, fc = module.contrast[0], module.contrast[2], module.contrast[5]
    return {
        "A": module.assign_weight.detach().double().numpy(),
        "b": module.assign_bias.detach().double().numpy(),
        "mu": module.centers.detach().double().numpy(),
        "tw": module.transform.weight.detach().double().numpy(),
        "tb": module.transform.bias.detach().double().numpy(),
        "c1w": c1.weight.detach().double().numpy(),
        "c1b": c1.bias.detach().double().numpy(),
        "c2w": c2.weight.detach().double().numpy(),
        "c2b": c2.bias.detach().double().numpy(),
        "fw": fc.weight.detach().double().numpy(),
        "fb": fc.bias.detach().double().numpy(),
    }


def test_transfer_loss_and_maps_against_numpy():
    torch.manual_seed(0)
    module = RSGModule(channels=3, num_classes=4, n_center=2, contrastive_dim=5).double()
    with torch.no_grad():
        module.centers.normal_()  # MONICA starts them at 0; random centers exercise argmax
    maps = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    labels = torch.tensor([0, 2, 0, 0, 3, 0])
    head, tail = torch.tensor([0, 2, 3, 5]), torch.tensor([1, 4])
    p = _params(module)
    for h, t in transfer_pairs(head, tail, 1.0):
        loss, moved = module.transfer(maps[h], labels[h], maps[t], labels[t])
        want_loss, want_maps = _np_mv(
            p, maps[h].numpy(), labels[h].numpy(), maps[t].numpy(), labels[t].numpy()
        )
        assert float(loss.detach()) == pytest.approx(want_loss, rel=1e-9)
        np.testing.assert_allclose(moved.detach().numpy(), want_maps, rtol=1e-9)
        module.zero_grad()
        loss.backward()
        trained = {n for n, q in module.named_parameters() if q.grad is not None}
        assert trained == {"transform.weight", "transform.bias"}  # MONICA: T alone learns


def test_initialisation_is_monicas():
    torch.manual_seed(0)
    module = RSGModule(channels=64, num_classes=3, n_center=15, contrastive_dim=32)
    assert torch.equal(module.centers, torch.zeros_like(module.centers))
    assert torch.equal(module.assign_bias, torch.ones_like(module.assign_bias))
    assert float(module.assign_weight.detach().std()) == pytest.approx(1.0, abs=0.03)
    conv = module.transform  # Kaiming normal, fan-out, ReLU gain: std √(2 / (9·64))
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)
    assert torch.equal(conv.bias, torch.zeros_like(conv.bias))


def _backbone(epochs=5, **params):
    ctx = make_ctx([50, 30, 10, 5], epochs=epochs)
    base = {"model_name": "resnet10t", "n_center": 2, "contrastive_dim": 8}
    return RSGResNeXt(RSGResNeXtParams(**{**base, **params}), ctx), ctx


def test_backbone_appends_transferred_tail_samples_after_the_threshold():
    torch.manual_seed(0)
    model, ctx = _backbone(epoch_thresh=2, head_classes=2)
    assert model.head_list.tolist() == [0, 1]
    batch = {"image": torch.randn(6, 3, 32, 32), "label": torch.tensor([0, 1, 0, 2, 1, 3])}
    model.set_epoch(2)  # epoch <= threshold: pair term on, no transfer
    before = model(batch)
    assert before["logits"].shape[0] == 6 and "label" not in before
    assert float(before["aux_losses"]["rsg_mv"]) == 0.0
    model.set_epoch(3)
    out = model(batch)
    # 4 head samples, 2 tail samples: int(4/2) = 2 rounds of 2 transferred tail maps
    assert out["logits"].shape[0] == 10
    assert out["label"].tolist() == [0, 1, 0, 2, 1, 3, 2, 3, 2, 3]
    loss = LDAMLoss(LDAMLossParams(), ctx)(out, batch).total + sum(out["aux_losses"].values())
    loss.backward()
    assert model.rsg.transform.weight.grad is not None
    assert all(p.grad is None for p in model.rsg.contrast.parameters())  # held fixed for MV
    t = model.trunk
    maps = t.layer3(t.layer2(t.layer1(t.maxpool(t.act1(t.bn1(t.conv1(batch["image"])))))))
    center = model.rsg.center_term(maps.detach(), batch["label"])  # no pair term after it
    cesc = float(out["aux_losses"]["rsg_cesc"].detach())
    assert cesc == pytest.approx(0.1 * float(center.detach()), rel=1e-4)


def test_transfer_without_head_classes_is_a_clear_error():
    with pytest.raises(ComponentError, match="head_classes"):
        _backbone(epochs=200)
    model, _ = _backbone(epochs=200, head_classes=1)
    assert model.head_list.tolist() == [0]


def test_appended_samples_cannot_be_mixed():
    from _fixtures import outputs

    ctx = make_ctx([50, 30, 10, 5])
    out = {**outputs(), "label": torch.tensor([0, 1, 2, 3, 3])}
    batch = {"label": torch.tensor([0, 1, 2, 3]), "label_b": torch.tensor([1, 1, 1, 1]), "lam": 0.5}
    with pytest.raises(ComponentError, match="appended samples"):
        LDAMLoss(LDAMLossParams(), ctx)(out, batch)
