"""Spec checks of the Margin-Mean-Variance loss: analytic values, hand example, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from asklepios_unisurv._functional import pdf_moments, predict_time, survival_curve
from asklepios_unisurv.losses import MMVLoss
from asklepios_unisurv.params import MMVLossParams

CTX = BuildContext()
PAIRS = BuildContext(data=DataFacts(task="survival", extras={"unisurv.sorted_pairs": True}))
"""Facts of training samples that carry partners, which alpha_d > 0 needs."""


def _batch(time, event, margin, weight, partner_time=None):
    batch = {
        "time": torch.tensor(time, dtype=torch.float64),
        "event": torch.tensor(event),
        "margin": torch.tensor(margin),
        "weight": torch.tensor(weight, dtype=torch.float64),
    }
    if partner_time is not None:
        batch["partner_time"] = torch.tensor(partner_time, dtype=torch.float64)
    return batch


def _reference_mmv(z, zb, t, d, e, w, tb, a_s, a_m, a_v, a_d):
    """Independent numpy version of the loss, written from spec §3.3."""
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    k = np.arange(z.shape[1])
    mu = (p * k).sum(1)
    var = (p * (k - mu[:, None]) ** 2).sum(1)
    ce = -np.mean(np.log(p[np.arange(len(e)), e]))
    mean = np.sum(w * (mu - e) ** 2) / (2 * len(e))
    total = a_s * ce + a_m * mean + a_v * var.mean()
    pb = np.exp(zb - zb.max(1, keepdims=True))
    pb /= pb.sum(1, keepdims=True)
    mub = (pb * k).sum(1)
    losses = [
        max(0.0, (tb[i] - t[i]) - (mub[i] - mu[i]))
        for i in range(len(t))
        if d[i] == 1 and t[i] < tb[i]
    ]
    disc = float(np.mean(losses)) if losses else 0.0
    return total + a_d * disc, ce, mean, var.mean(), disc


def test_uniform_logits_give_the_analytic_values():
    logits = torch.zeros(1, 96, dtype=torch.float64)
    _, mu, var = pdf_moments(logits)
    assert mu.item() == pytest.approx(47.5)
    assert var.item() == pytest.approx(767.9166667, abs=1e-6)
    assert survival_curve(logits).sum().item() == pytest.approx(47.5)
    out = MMVLoss(MMVLossParams(alpha_d=0), CTX)(
        {"logits": logits}, _batch([10.0], [1], [10], [1.0])
    )
    assert out.terms["ce"].item() == pytest.approx(math.log(96), abs=1e-12)
    assert (0.01 * out.terms["mean"]).item() == pytest.approx(7.03125)
    assert out.terms["variance"].item() == pytest.approx(767.9166667, abs=1e-6)
    assert out.total.item() == pytest.approx(math.log(96) + 7.03125 + 767.9166667, abs=1e-6)


def test_peaked_logits_drive_every_term_to_zero():
    logits = torch.full((1, 96), -1e4, dtype=torch.float64)
    logits[0, 10] = 1e4
    out = MMVLoss(MMVLossParams(alpha_d=0), CTX)(
        {"logits": logits}, _batch([10.0], [1], [10], [1.0])
    )
    for name in ("ce", "mean", "variance"):
        assert out.terms[name].item() == pytest.approx(0.0, abs=1e-9)


def test_sum_of_survival_equals_pdf_mean_for_random_logits():
    logits = torch.randn(16, 96, generator=torch.Generator().manual_seed(0))
    _, mu, _ = pdf_moments(logits)
    torch.testing.assert_close(survival_curve(logits).sum(-1), mu, atol=1e-4, rtol=0)
    torch.testing.assert_close(predict_time(logits, "mean"), mu, atol=1e-4, rtol=0)


def _peaked(bins, num_bins=96):
    logits = torch.full((len(bins), num_bins), -1e4, dtype=torch.float64)
    logits[torch.arange(len(bins)), torch.tensor(bins)] = 1e4
    return logits


def test_ranking_loss_hand_example():
    loss = MMVLoss(MMVLossParams(alpha_s=0, alpha_m=0, alpha_v=0, alpha_d=1), PAIRS)
    outputs = {"logits": _peaked([15]), "partner_logits": _peaked([18])}
    out = loss(outputs, _batch([10.0], [1], [10], [1.0], partner_time=[20.0]))
    assert out.terms["discordance"].item() == pytest.approx(7.0)
    assert out.total.item() == pytest.approx(7.0)
    censored = loss(outputs, _batch([10.0], [0], [10], [0.5], partner_time=[20.0]))
    assert censored.terms["discordance"].item() == 0.0
    later = loss(outputs, _batch([20.0], [1], [20], [1.0], partner_time=[20.0]))
    assert later.terms["discordance"].item() == 0.0


def test_loss_matches_an_independent_numpy_implementation():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(6, 12, generator=gen, dtype=torch.float64)
    zb = torch.randn(6, 12, generator=gen, dtype=torch.float64)
    t = [1.0, 4.0, 7.0, 2.0, 9.0, 5.0]
    d = [1, 0, 1, 1, 0, 1]
    e = [1, 6, 7, 2, 10, 5]
    w = [1.0, 0.3, 1.0, 1.0, 0.7, 1.0]
    tb = [3.0, 9.0, 11.0, 2.0, 10.0, 8.0]
    params = MMVLossParams(alpha_s=1.0, alpha_m=0.05, alpha_v=0.5, alpha_d=2.0)
    out = MMVLoss(params, PAIRS)({"logits": z, "partner_logits": zb}, _batch(t, d, e, w, tb))
    ref = _reference_mmv(
        z.numpy(), zb.numpy(), t, d, np.array(e), np.array(w), tb, 1.0, 0.05, 0.5, 2.0
    )
    assert out.total.item() == pytest.approx(ref[0], rel=1e-12)
    got = [out.terms[k].item() for k in ("ce", "mean", "variance", "discordance")]
    np.testing.assert_allclose(got, ref[1:], rtol=1e-12)


def test_gradcheck_full_loss_wrt_logits():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    zb = torch.randn(4, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    batch = _batch(
        [2.0, 5.0, 3.0, 8.0],
        [1, 0, 1, 0],
        [2, 7, 3, 9],
        [1.0, 0.4, 1.0, 0.6],
        [6.0, 9.0, 11.0, 10.0],
    )
    loss = MMVLoss(MMVLossParams(), PAIRS)

    def fn(a, b):
        return loss({"logits": a, "partner_logits": b}, batch).total

    assert torch.autograd.gradcheck(fn, (z, zb))


def test_positive_alpha_d_without_partners_is_a_clear_error():
    with pytest.raises(ComponentError, match=r"unisurv\.sorted_pairs"):
        MMVLoss(MMVLossParams(), BuildContext(data=DataFacts(task="survival")))
    loss = MMVLoss(MMVLossParams(), PAIRS)
    batch = _batch([1.0], [1], [1], [1.0], partner_time=[3.0])
    with pytest.raises(ComponentError, match=r"unisurv\.pairwise"):
        loss({"logits": torch.zeros(1, 8)}, batch)
    evaluation = loss({"logits": torch.zeros(1, 8)}, _batch([1.0], [1], [1], [1.0]))
    assert "discordance" not in evaluation.terms


def test_missing_margin_and_out_of_range_margin_are_errors():
    loss = MMVLoss(MMVLossParams(alpha_d=0), CTX)
    with pytest.raises(ComponentError, match="km_margin"):
        loss({"logits": torch.zeros(1, 8)}, {"time": torch.ones(1), "event": torch.ones(1)})
    with pytest.raises(ComponentError, match=r"\[0, 7\]"):
        loss({"logits": torch.zeros(1, 8)}, _batch([9.0], [1], [9], [1.0]))


def test_example_inputs_give_a_finite_loss_with_gradients():
    loss = MMVLoss(MMVLossParams(), PAIRS)
    ctx = BuildContext(data=DataFacts(task="survival", extras={"t_max": 16}))
    outputs, batch = loss.example_inputs(ctx)
    out = loss(outputs, batch)
    out.total.backward()
    assert torch.isfinite(out.total)
    assert outputs["logits"].grad is not None
    assert set(out.terms) == {"ce", "mean", "variance", "discordance"}
